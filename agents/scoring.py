"""Scoring an output: code scorers, the LLM judge (through the ordinary call path) and the
Score rows they leave, each credited to the agents whose work it scored."""

from __future__ import annotations


def score_subtask(subtask_id: int, scorer_id: int) -> None:
    """Online scoring: one scorer on one completed live subtask's result."""
    raise NotImplementedError
