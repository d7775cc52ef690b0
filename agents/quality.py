"""Quality: scores credited per agent and specialty (QualitySample rows, written by
agents.scoring), their recent mean for the allocator, the agents page's chart, online
scoring of live work, and the drop that raises `agent.quality_dropped`.

The allocator reads `recent()` on every dispatch pass, so it is one aggregate query at most
every QUALITY_CACHE_S per process, an empty result ("no samples at all") cached the same.

A drop is announced once per (agent, specialty) while it lasts. Who has been told is kept in
Redis, not in a table: a key per pair set with SET NX (so of the reconcilers of every worker
that see the drop, one announces it) and an expiry of the quality window (the state never
outgrows the pairs that dropped, and a drop that outlasts the window is announced again, as
a reminder). A pair whose mean is back at or above the threshold has its key deleted, so its
next drop is news. Without Redis (standalone: one process) a dictionary of this process does.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from . import enqueue, events
from .events import Announcement
from .models import Agent, QualitySample, Scorer, Subtask, SubtaskStatus
from .redisconn import redis_client

log = logging.getLogger(__name__)

DROPPED = "agent.quality_dropped"
ALERTED_PREFIX = "baton:quality:dropped:"
# How long a process trusts what it read of the online scorers.
ONLINE_TTL_S = 5.0

Means = dict[tuple[int, str], tuple[float, int]]


@dataclass(frozen=True)
class OnlineScorer:
    id: int
    type: str
    rate: float


_lock = threading.Lock()
_recent: tuple[float, Means] = (float("-inf"), {})
_online: tuple[float, tuple[OnlineScorer, ...]] = (float("-inf"), ())
_last_check = float("-inf")
_alerted_here: dict[str, float] = {}  # without Redis: key → when it lapses (monotonic)


def forget() -> None:
    """Read everything again at the next call (tests; a scorer changed in this process)."""
    global _recent, _online, _last_check
    with _lock:
        _recent = (float("-inf"), {})
        _online = (float("-inf"), ())
        _last_check = float("-inf")
        _alerted_here.clear()


def window() -> timedelta:
    return timedelta(hours=settings.QUALITY_WINDOW_H)


def _read() -> Means:
    since = timezone.now() - window()
    rows = (
        QualitySample.objects.filter(created_at__gte=since)
        .values("agent_id", "specialty")
        .annotate(mean=Avg("value"), n=Count("id"))
        .order_by()
    )
    return {(r["agent_id"], r["specialty"]): (float(r["mean"]), r["n"]) for r in rows}


def recent(agent_ids: Iterable[int] | None = None, *, fresh: bool = False) -> Means:
    """(agent id, specialty) → (mean score, number of scores) over the last
    QUALITY_WINDOW_H hours; read again at most every QUALITY_CACHE_S (`fresh`: now).

    The mapping returned is shared: callers read it, never change it.
    """
    global _recent
    read_at, means = _recent
    if fresh or time.monotonic() - read_at > settings.QUALITY_CACHE_S:
        means = _read()
        _recent = (time.monotonic(), means)
    if agent_ids is None:
        return means
    wanted = set(agent_ids)
    return {key: value for key, value in means.items() if key[0] in wanted}


def dropped(mean: float, n: int) -> bool:
    """Whether a mean over n scores is a drop: below the threshold, over enough scores."""
    return n >= settings.QUALITY_MIN_SAMPLES and mean < settings.QUALITY_ALERT_BELOW


def _hours(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """Whole hours (UTC) ending with the current one."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(hours=hours), end


def series_for(
    agent_ids: Iterable[int], hours: int, now: datetime | None = None
) -> dict[int, list[float | None]]:
    """For each agent, its mean score per hour over the last `hours` (None: no score that
    hour), every specialty together, oldest first. One query for all of them."""
    agent_ids = list(agent_ids)
    series: dict[int, list[float | None]] = {a: [None] * hours for a in agent_ids}
    if not agent_ids:
        return series
    start, end = _hours(now or timezone.now(), hours)
    rows = (
        QualitySample.objects.filter(
            agent_id__in=agent_ids, created_at__gte=start, created_at__lt=end
        )
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("agent_id", "hour")
        .annotate(mean=Avg("value"))
        .order_by()
    )
    for row in rows:
        index = int((row["hour"] - start).total_seconds() // 3600)
        if 0 <= index < hours:
            series[row["agent_id"]][index] = round(float(row["mean"]), 3)
    return series


def series(agent: Agent, hours: int) -> list[float | None]:
    """An agent's hourly mean scores over the last `hours`, oldest first."""
    return series_for([agent.pk], hours)[agent.pk]


# -- Drops -------------------------------------------------------------------------------


def _alert_key(agent_id: int, specialty: str) -> str:
    return f"{ALERTED_PREFIX}{agent_id}:{specialty}"


def _first_alert(key: str) -> bool:
    """Mark `key` alerted; whether it was not already (one process wins)."""
    ttl = int(window().total_seconds())
    if settings.REDIS_URL:
        return bool(redis_client(settings.REDIS_URL).set(key, 1, nx=True, ex=ttl))
    now = time.monotonic()
    with _lock:
        if _alerted_here.get(key, float("-inf")) > now:
            return False
        _alerted_here[key] = now + ttl
        return True


def _recovered(keys: list[str]) -> None:
    if not keys:
        return
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).delete(*keys)
    else:
        with _lock:
            for key in keys:
                _alerted_here.pop(key, None)


def check_drops() -> int:
    """Announce `agent.quality_dropped` for each (agent, specialty) whose recent mean fell
    below QUALITY_ALERT_BELOW (over at least QUALITY_MIN_SAMPLES scores) and was not
    announced yet; how many were announced."""
    means = recent(fresh=True)
    low = sorted(key for key, (mean, n) in means.items() if dropped(mean, n))
    _recovered(
        [
            _alert_key(*key)
            for key, (mean, _) in means.items()
            if mean >= settings.QUALITY_ALERT_BELOW
        ]
    )
    new = [key for key in low if _first_alert(_alert_key(*key))]
    if not new:
        return 0
    slugs = dict(Agent.objects.filter(pk__in={a for a, _ in new}).values_list("pk", "slug"))
    for agent_id, specialty in new:
        mean, n = means[(agent_id, specialty)]
        # Not a job's event: job 0 (the stream's per-job feeds never carry it).
        events.announce(
            DROPPED,
            0,
            {
                "agent_id": agent_id,
                "agent": slugs.get(agent_id, ""),
                "specialty": specialty,
                "mean": round(mean, 4),
                "n": n,
                "threshold": settings.QUALITY_ALERT_BELOW,
                "window_h": settings.QUALITY_WINDOW_H,
            },
        )
    log.warning("quality dropped below %s: %s", settings.QUALITY_ALERT_BELOW, new)
    return len(new)


def check_drops_due() -> int:
    """check_drops, at most once every QUALITY_CHECK_EVERY_S in this process (each
    reconciler pass calls it)."""
    global _last_check
    now = time.monotonic()
    with _lock:
        if now - _last_check < settings.QUALITY_CHECK_EVERY_S:
            return 0
        _last_check = now
    return check_drops()


# -- Online scoring ----------------------------------------------------------------------


def online_scorers() -> tuple[OnlineScorer, ...]:
    """Enabled scorers attached to live work (a type, a rate above 0), read again every
    ONLINE_TTL_S."""
    global _online
    read_at, scorers = _online
    if time.monotonic() - read_at > ONLINE_TTL_S:
        rows = (
            Scorer.objects.filter(enabled=True, sample_rate__gt=0)
            .exclude(online_type="")
            .values_list("pk", "online_type", "sample_rate")
        )
        scorers = tuple(OnlineScorer(*row) for row in rows)
        _online = (time.monotonic(), scorers)
    return scorers


def on_announcements(announcements: list[Announcement]) -> None:
    """The agents.events hook: a completed live subtask of a type some online scorer takes
    is scored at that scorer's rate (a Celery message each). Asks the database nothing but
    for completed subtasks, and then only while online scorers exist.

    Not durable: a process killed before its flusher ran misses a sample, not a fact.
    Experiment jobs are left out: their experiment scores the whole job.
    """
    completed = [
        a.data["subtask_id"]
        for a in announcements
        if a.event == "subtask.status" and a.data.get("status") == SubtaskStatus.COMPLETED
    ]
    if not completed:
        return
    scorers = online_scorers()
    if not scorers:
        return
    live = Subtask.objects.filter(
        pk__in=completed,
        type__in={s.type for s in scorers},
        job__experiment_case__isnull=True,
    ).values_list("pk", "type")
    for subtask_id, type_ in live:
        for scorer in scorers:
            if scorer.type == type_ and random.random() < scorer.rate:
                enqueue.score_subtask(subtask_id, scorer.id)


def register() -> None:
    """Hook online scoring to completed subtasks (the reconciler's drop check is hooked by
    AgentsConfig.ready: agents.recovery is a layer above this module)."""
    events.on_announcements(on_announcements)


# -- The agents page ---------------------------------------------------------------------


@dataclass
class SpecialtyQuality:
    specialty: str
    mean: float
    n: int
    prior: bool  # too few scores: the allocator counts the neutral prior
    dropped: bool


@dataclass
class AgentQuality:
    agent: Agent
    specialties: list[SpecialtyQuality]
    series: list[float | None]  # hourly means, oldest first

    @property
    def dropped(self) -> list[SpecialtyQuality]:
        return [s for s in self.specialties if s.dropped]


def by_agent(agents: list[Agent], hours: int) -> list[AgentQuality]:
    """Each agent's quality per specialty (read now, not from the cache) and its hourly
    means over the last `hours`: two queries whatever the number of agents and scores."""
    means = recent(fresh=True)
    charts = series_for([a.pk for a in agents], hours)
    minimum = settings.QUALITY_MIN_SAMPLES
    specialties: dict[int, list[SpecialtyQuality]] = {}
    for (agent_id, spec), (mean, n) in sorted(means.items()):
        row = SpecialtyQuality(spec, mean, n, n < minimum, dropped(mean, n))
        specialties.setdefault(agent_id, []).append(row)
    return [AgentQuality(a, specialties.get(a.pk, []), charts[a.pk]) for a in agents]
