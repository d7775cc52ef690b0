"""Choosing the agent for a subtask: plain values in, a choice and its reasons out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .metrics import success_rate

# An agent with one of these plans and synthesises jobs: it runs a subtask only when it has
# that subtask's type among its specialties, never as a fallback.
PLANNER_SPECIALTIES = frozenset({"orchestration", "planning"})
CANDIDATES_KEPT = 10
# The quality term's defaults (the dispatcher passes settings.QUALITY_WEIGHT and
# QUALITY_MIN_SAMPLES): at most ±weight/2 points, as much as a few subtasks of load.
QUALITY_WEIGHT = 40.0
QUALITY_MIN_SAMPLES = 5
NEUTRAL_QUALITY = 0.5
# (agent id, specialty) → (mean score in [0, 1], number of scores), as agents.quality reads it.
Qualities = Mapping[tuple[int, str], tuple[float, int]]


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
    # Its recent mean score for the subtask type being allocated, and over how many scores.
    quality: float | None = None
    quality_n: int = 0

    @property
    def is_orchestrator(self) -> bool:
        return not PLANNER_SPECIALTIES.isdisjoint(self.specialties)


@dataclass(frozen=True)
class QualityRule:
    """How much an agent's quality counts: `weight` points between the worst and the best
    agent, nothing below `min_samples` scores."""

    weight: float = QUALITY_WEIGHT
    min_samples: int = QUALITY_MIN_SAMPLES

    def term(self, quality: float | None, n: int) -> float:
        """weight × (shrunk mean − 0.5), in [−weight/2, +weight/2].

        Fewer than `min_samples` scores: exactly 0 (a neutral prior, so a newcomer still gets
        work). Above, the mean is shrunk towards 0.5 as if `min_samples` neutral scores were
        added (a few scores move it less than many); for a given n it never decreases as the
        mean rises.
        """
        if quality is None or n < self.min_samples or not self.weight:
            return 0.0
        mean = min(max(quality, 0.0), 1.0)
        shrunk = (mean * n + NEUTRAL_QUALITY * self.min_samples) / (n + self.min_samples)
        return self.weight * (shrunk - NEUTRAL_QUALITY)


DEFAULT_RULE = QualityRule()


def score(c: Candidate, rule: QualityRule = DEFAULT_RULE) -> float:
    """success_rate × 100 − avg_response_time × 0.1 − current_load × 5 (100 with no history),
    plus the quality term (0 without enough scores)."""
    base = success_rate(c.completed, c.failed) * 100 - c.avg_latency_s * 0.1 - c.load * 5
    return base if c.quality is None else base + rule.term(c.quality, c.quality_n)


def with_quality(task_type: str, candidates: Iterable[Candidate], qualities: Qualities):
    """The candidates, each carrying its quality for `task_type` (None where it has none)."""
    for c in candidates:
        mean, n = qualities.get((c.id, task_type), (None, 0))
        yield c if (c.quality, c.quality_n) == (mean, n) else replace(c, quality=mean, quality_n=n)


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
    if all(c.id != named.id for c in pool):
        if task_type not in named.specialties and named.is_orchestrator:
            return f"{hint} is the orchestrator, without the {task_type} specialty"
        return f"{hint} does not have the {task_type} specialty"
    if named.load >= named.max_concurrency:
        return f"{hint} is at its max concurrency"
    return ""


def choose(
    task_type: str,
    candidates: Iterable[Candidate],
    hint: str = "",
    *,
    qualities: Qualities | None = None,
    rule: QualityRule = DEFAULT_RULE,
) -> tuple[Candidate | None, dict]:
    """The highest-scoring eligible agent with capacity, and a record of why.

    Returns (None, reasons) when every eligible agent is at its max concurrency, or when no
    agent is eligible at all (`reasons["eligible"]` is then 0). A hint (the plan's
    `assign_to`) wins when it names an eligible agent with capacity; otherwise the reasons
    say why it was set aside. `qualities` gives each agent's quality for the type (the
    chosen candidate carries it); `rule` says how much it counts.
    """
    everyone = list(candidates)
    pool = eligible(task_type, everyone)
    if qualities:
        pool = list(with_quality(task_type, pool, qualities))
    free = [c for c in pool if c.load < c.max_concurrency]
    reasons: dict = {"type": task_type, "candidates": [], "hint": hint, "eligible": len(pool)}
    if not free:
        reasons["candidates"] = _terms(pool, None, rule)
        reasons["chosen"] = None
        return None, reasons
    refused = _hint_refused(task_type, hint, everyone, pool) if hint else ""
    if refused:
        reasons["hint_ignored"] = refused
    hinted = [] if refused else [c for c in free if c.slug == hint]
    # Ties go to the lowest id so the choice is deterministic.
    best = hinted[0] if hinted else max(free, key=lambda c: (score(c, rule), -c.id))
    reasons["candidates"] = _terms(pool, best, rule)
    reasons["chosen"] = best.slug
    reasons["by"] = "hint" if hinted else "score"
    return best, reasons


def _terms(pool: list[Candidate], chosen: Candidate | None, rule: QualityRule) -> list[dict]:
    """The best-scoring CANDIDATES_KEPT of the pool (and the chosen one), best first, each
    with its score's terms: a large team does not make every subtask's record large."""
    ranked = sorted(pool, key=lambda c: (-score(c, rule), c.id))
    kept = ranked[:CANDIDATES_KEPT]
    if chosen is not None and chosen not in kept:
        kept.append(chosen)
    return [_record(c, rule) for c in kept]


def _record(c: Candidate, rule: QualityRule) -> dict:
    """One candidate's terms; its quality only when it has scores for the type (a record
    without them reads as the neutral prior)."""
    terms = {
        "agent": c.slug,
        "success_rate": round(success_rate(c.completed, c.failed), 4),
        "avg_latency_s": round(c.avg_latency_s, 3),
        "load": c.load,
        "max_concurrency": c.max_concurrency,
        "score": round(score(c, rule), 3),
    }
    if c.quality is not None:
        terms["quality"] = round(c.quality, 3)
        terms["quality_n"] = c.quality_n
        terms["quality_term"] = round(rule.term(c.quality, c.quality_n), 3)
        terms["prior"] = c.quality_n < rule.min_samples  # too few: the neutral prior
    return terms
