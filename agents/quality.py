"""Quality: scores credited per agent and specialty, their recent mean for the allocator, and
the drop that raises agent.quality_dropped."""

from __future__ import annotations


def register() -> None:
    """Hook online scoring to completed subtasks."""
