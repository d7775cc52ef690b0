"""Experiments: a dataset's cases run as ordinary jobs below live work, scored as they end,
stopped by their budget; their summaries and comparisons."""

from __future__ import annotations


def advance(experiment_id: int) -> None:
    """Score the cases whose jobs ended, start the next ones, stop or finish."""


def register() -> None:
    """Hook the experiments to job ends (events) and to the reconciler's passes."""
