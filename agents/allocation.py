"""Choosing the agent for a subtask: plain values in, a choice and its reasons out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .metrics import success_rate

# An agent with one of these plans and synthesises jobs: it runs a subtask only when it has
# that subtask's type among its specialties, never as a fallback.
PLANNER_SPECIALTIES = frozenset({"orchestration", "planning"})
CANDIDATES_KEPT = 10


@dataclass(frozen=True)
class Candidate:
    id: int
    slug: str
    specialties: tuple[str, ...]
    completed: int
    failed: int
    avg_latency_s: float
    load: int
    max_concurrency: int

    @property
    def is_orchestrator(self) -> bool:
        return not PLANNER_SPECIALTIES.isdisjoint(self.specialties)


def score(c: Candidate) -> float:
    """success_rate × 100 − avg_response_time × 0.1 − current_load × 5 (100 with no history)."""
    return success_rate(c.completed, c.failed) * 100 - c.avg_latency_s * 0.1 - c.load * 5


def eligible(task_type: str, candidates: Iterable[Candidate]) -> list[Candidate]:
    """Specialists of the type, or every agent but the orchestrator when no one has that
    specialty (the orchestrator too when it has it)."""
    everyone = list(candidates)
    specialists = [c for c in everyone if task_type in c.specialties]
    return specialists or [c for c in everyone if not c.is_orchestrator]


def _hint_refused(
    task_type: str, hint: str, everyone: list[Candidate], pool: list[Candidate]
) -> str:
    """Why the plan's `assign_to` may not have this subtask; empty when it may."""
    named = next((c for c in everyone if c.slug == hint), None)
    if named is None:
        return f"{hint} is not an enabled agent"
    if named not in pool:
        if task_type not in named.specialties and named.is_orchestrator:
            return f"{hint} is the orchestrator, without the {task_type} specialty"
        return f"{hint} does not have the {task_type} specialty"
    if named.load >= named.max_concurrency:
        return f"{hint} is at its max concurrency"
    return ""


def choose(
    task_type: str, candidates: Iterable[Candidate], hint: str = ""
) -> tuple[Candidate | None, dict]:
    """The highest-scoring eligible agent with capacity, and a record of why.

    Returns (None, reasons) when every eligible agent is at its max concurrency, or when no
    agent is eligible at all (`reasons["eligible"]` is then 0). A hint (the plan's
    `assign_to`) wins when it names an eligible agent with capacity; otherwise the reasons
    say why it was set aside.
    """
    everyone = list(candidates)
    pool = eligible(task_type, everyone)
    free = [c for c in pool if c.load < c.max_concurrency]
    reasons: dict = {"type": task_type, "candidates": [], "hint": hint, "eligible": len(pool)}
    if not free:
        reasons["candidates"] = _terms(pool, None)
        reasons["chosen"] = None
        return None, reasons
    refused = _hint_refused(task_type, hint, everyone, pool) if hint else ""
    if refused:
        reasons["hint_ignored"] = refused
    hinted = [] if refused else [c for c in free if c.slug == hint]
    # Ties go to the lowest id so the choice is deterministic.
    best = hinted[0] if hinted else max(free, key=lambda c: (score(c), -c.id))
    reasons["candidates"] = _terms(pool, best)
    reasons["chosen"] = best.slug
    reasons["by"] = "hint" if hinted else "score"
    return best, reasons


def _terms(pool: list[Candidate], chosen: Candidate | None) -> list[dict]:
    """The best-scoring CANDIDATES_KEPT of the pool (and the chosen one), best first, each
    with its score's terms: a large team does not make every subtask's record large."""
    ranked = sorted(pool, key=lambda c: (-score(c), c.id))
    kept = ranked[:CANDIDATES_KEPT]
    if chosen is not None and chosen not in kept:
        kept.append(chosen)
    return [
        {
            "agent": c.slug,
            "success_rate": round(success_rate(c.completed, c.failed), 4),
            "avg_latency_s": round(c.avg_latency_s, 3),
            "load": c.load,
            "max_concurrency": c.max_concurrency,
            "score": round(score(c), 3),
        }
        for c in kept
    ]
