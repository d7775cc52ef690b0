"""Live events: the domain announces ids after commit; the dashboard renders them.

A status move or a change of numbers calls one of the `*_changed` functions below, which
registers an `on_commit` callback: nothing is announced for a transaction that rolls back.
Announcements are coalesced per process over a short window (`LIVE_WINDOW_S`): a job that
changed five times in that window is rendered once, in its newest state, and only for
groups that some page watches. The publisher (dashboard.live) is registered at start-up,
so this module imports nothing of the web face and renders nothing.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from .limiter import redis_client

log = logging.getLogger(__name__)

BOARD_GROUP = "board"
AGENTS_GROUP = "agents"
WATCHED_PREFIX = "baton:watched:"
# A group's presence in Redis outlives a few renewals (dashboard.live.HEARTBEAT_S) and no more:
# a flushed Redis learns the groups again from the next renewal, and a killed web process's
# groups stop being rendered soon after.
WATCHERS_TTL_S = 10


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


@dataclass
class Batch:
    """What changed during one window; `moved` jobs changed status (their board column)."""

    jobs: dict[int, bool] = field(default_factory=dict)
    subtasks: dict[int, int] = field(default_factory=dict)  # subtask id → job id
    states: set[int] = field(default_factory=set)
    agents: set[int] = field(default_factory=set)
    watched: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.subtasks or self.states or self.agents)

    def merge(self, other: Batch) -> None:
        for job_id, moved in other.jobs.items():
            self.jobs[job_id] = moved or self.jobs.get(job_id, False)
        self.subtasks.update(other.subtasks)
        self.states |= other.states
        self.agents |= other.agents
        self.watched |= other.watched

    def to_json(self) -> str:
        return json.dumps(
            {
                "jobs": self.jobs,
                "subtasks": self.subtasks,
                "states": sorted(self.states),
                "agents": sorted(self.agents),
                "watched": sorted(self.watched),
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Batch:
        data = json.loads(text)
        return cls(
            jobs={int(k): v for k, v in data["jobs"].items()},
            subtasks={int(k): v for k, v in data["subtasks"].items()},
            states=set(data["states"]),
            agents=set(data["agents"]),
            watched=set(data["watched"]),
        )

    def groups(self) -> set[str]:
        groups = {job_group(j) for j in (*self.jobs, *self.subtasks.values(), *self.states)}
        if self.jobs:
            groups.add(BOARD_GROUP)
        if self.agents:
            groups.add(AGENTS_GROUP)
        return groups


Publisher = Callable[[Batch], None]
_publisher: Publisher | None = None
_batch = Batch()
_lock = threading.Lock()
_wake = threading.Condition(_lock)
_flusher: threading.Thread | None = None
_local_watchers: dict[str, int] = {}


def set_publisher(publisher: Publisher | None) -> None:
    """The web face registers the function that renders and sends a batch."""
    global _publisher
    _publisher = publisher


def job_changed(job_id: int, *, moved: bool = False) -> None:
    """A job's fields changed; `moved` when its status changed."""

    def record(batch: Batch) -> None:
        batch.jobs[job_id] = moved or batch.jobs.get(job_id, False)

    transaction.on_commit(lambda: _add(record))


def subtask_changed(subtask_id: int, job_id: int) -> None:
    transaction.on_commit(lambda: _add(lambda batch: batch.subtasks.update({subtask_id: job_id})))


def state_changed(job_id: int) -> None:
    transaction.on_commit(lambda: _add(lambda batch: batch.states.add(job_id)))


def agent_changed(agent_id: int) -> None:
    """Load or metrics of an agent changed."""
    transaction.on_commit(lambda: _add(lambda batch: batch.agents.add(agent_id)))


def _add(record: Callable[[Batch], None]) -> None:
    global _flusher
    with _lock:
        record(_batch)
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_forever, name="baton-live", daemon=True)
            _flusher.start()
            # Registered after the publisher's own exit hook, so it runs before it.
            atexit.register(flush_now)
        _wake.notify()


def _take() -> Batch:
    global _batch
    batch, _batch = _batch, Batch()
    return batch


def _flush_forever() -> None:
    while True:
        with _lock:
            while not _batch:
                _wake.wait()
        # Let the window fill: everything announced meanwhile goes out in one render.
        time.sleep(settings.LIVE_WINDOW_S)
        with _lock:
            batch = _take()
        flush_batch(batch)
        with _lock:
            idle = not _batch
        if idle:  # nothing more to render for now: give the database connection back
            connection.close()


def flush_batch(batch: Batch) -> None:
    """Hand a batch to the publisher for the groups that some page watches."""
    if _publisher is None or not batch:
        return
    try:
        groups = sorted(batch.groups())
        batch.watched = {g for g, seen in zip(groups, watched(*groups), strict=True) if seen}
        if batch.watched:
            _publisher(batch)
    except Exception:  # a failed push must never break the step that committed
        log.exception("could not publish live events")


def flush_now() -> None:
    """Publish what is pending at once (a short-lived command before it exits, tests)."""
    with _lock:
        batch = _take()
    flush_batch(batch)


def watch(group: str, delta: int) -> None:
    """Count the pages of this process open on a group (consumers call it), so nobody
    renders for no one."""
    with _lock:
        _local_watchers[group] = max(_local_watchers.get(group, 0) + delta, 0)
    if settings.REDIS_URL and delta > 0:
        redis_client(settings.REDIS_URL).set(WATCHED_PREFIX + group, 1, ex=WATCHERS_TTL_S)


def renew_watchers() -> list[str]:
    """The groups this process's pages watch, their presence in Redis renewed.

    Presence is not counted up and down in Redis: a count would be lost with Redis's data,
    or left too high by a process that died, and never be right again.
    """
    with _lock:
        groups = sorted(g for g, n in _local_watchers.items() if n > 0)
    if settings.REDIS_URL and groups:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        for group in groups:
            pipe.set(WATCHED_PREFIX + group, 1, ex=WATCHERS_TTL_S)
        pipe.execute()
    return groups


def watched(*groups: str) -> list[bool]:
    """Whether some page watches each group, in one round trip."""
    if not groups:
        return []
    if settings.REDIS_URL:
        present = redis_client(settings.REDIS_URL).mget([WATCHED_PREFIX + g for g in groups])
        return [value is not None for value in present]
    with _lock:
        return [_local_watchers.get(group, 0) > 0 for group in groups]
