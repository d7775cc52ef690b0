"""Live events: the domain announces ids after commit; the dashboard renders them.

A status move or a change of numbers calls one of the `*_changed` functions below, which
registers an `on_commit` callback: nothing is announced for a transaction that rolls back.
Announcements are coalesced per process over a short window (`LIVE_WINDOW_S`): a job that
changed five times in that window is rendered once, in its newest state, and only for
groups that some page watches. The publisher (dashboard.live) is registered at start-up,
so this module imports nothing of the web face and renders nothing.

Status moves, new shared-state versions and finished calls are also announced, in the order
they committed, to the hooks other systems register (`on_announcements`: the event stream and
webhooks); the flusher thread hands them over, so a step's own thread pays nothing for them.
An announcement a hook says someone consumes (`durable`) is also written to the outbox in the
moving transaction (agents.outbox), so a process killed before its flusher ran loses nothing.
The outbox registers itself at start-up (`keep_with`, from AgentsConfig.ready): it imports the
models, which import this module, so this module does not import it.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from . import threads
from .redisconn import redis_client

log = logging.getLogger(__name__)

BOARD_GROUP = "board"
AGENTS_GROUP = "agents"
WATCHED_PREFIX = "baton:watched:"
# A group's presence in Redis outlives a few renewals (dashboard.live.HEARTBEAT_S) and no more:
# a flushed Redis learns the groups again from the next renewal, and a killed web process's
# groups stop being rendered soon after.
WATCHERS_TTL_S = 10
# The same presence as one sorted set (each group scored with the time its presence lapses),
# for callers that ask about many groups, often (agents.streaming): one read for all of them.
WATCHED_SET = "baton:watched"


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


@dataclass(frozen=True)
class Announcement:
    """A named fact for systems outside the dashboard: `job.status`, `subtask.status`,
    `state.version`, `call.finished`; `data` holds ids and small plain values only. `id` is
    the same however often it is relayed (an outbox row keeps it): consumers de-duplicate by it."""

    event: str
    job_id: int
    data: dict
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Batch:
    """What changed during one window; `moved` jobs changed status (their board column)."""

    jobs: dict[int, bool] = field(default_factory=dict)
    subtasks: dict[int, int] = field(default_factory=dict)  # subtask id → job id
    states: set[int] = field(default_factory=set)
    agents: set[int] = field(default_factory=set)
    watched: set[str] = field(default_factory=set)
    # Only for this process's hooks: never forwarded with the batch.
    announcements: list[Announcement] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)  # rows to delete once the hooks ran

    def __bool__(self) -> bool:
        return bool(self.jobs or self.subtasks or self.states or self.agents or self.announcements)

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
AnnouncementHook = Callable[[list[Announcement]], None]
Durable = Callable[[Announcement], bool]
_publisher: Publisher | None = None
_hooks: list[AnnouncementHook] = []
_durable: list[Durable] = []
_outbox_write: Callable[[Announcement], int] | None = None
_outbox_forget: Callable[[list[int]], None] | None = None
_batch = Batch()
_lock = threading.Lock()
_wake = threading.Condition(_lock)  # an announcement, flush_now or a stop: the flusher looks
_stopping = threading.Event()
_local_watchers: dict[str, int] = {}


def set_publisher(publisher: Publisher | None) -> None:
    """The web face registers the function that renders and sends a batch."""
    global _publisher
    _publisher = publisher


def on_announcements(hook: AnnouncementHook, durable: Durable | None = None) -> None:
    """Register `hook`, called with each window's announcements (after commit, in order,
    from the flusher thread). It must be quick and may raise: the others still run.

    `durable(announcement)` says, in the moving transaction, whether someone consumes it:
    then it is written to the outbox and survives this process. It must be cheap (most
    moves ask it) and may be wrong only on the side of True.
    """
    if hook not in _hooks:
        _hooks.append(hook)
    if durable is not None and durable not in _durable:
        _durable.append(durable)


def keep_with(write: Callable[[Announcement], int], forget: Callable[[list[int]], None]) -> None:
    """The outbox (agents.outbox) registers how a durable announcement is kept: `write` it
    in the moving transaction (its row's id), `forget` the rows once the hooks took them."""
    global _outbox_write, _outbox_forget
    _outbox_write, _outbox_forget = write, forget


def _announced(batch: Batch, announcement: Announcement, row: int | None) -> None:
    batch.announcements.append(announcement)
    if row is not None:
        batch.outbox.append(row)


def _keep(announcement: Announcement) -> int | None:
    """Its outbox row, written now (inside the caller's transaction) if someone consumes it.

    Outside a transaction the move committed on its own just before: the row follows it."""
    if _outbox_write is None or not any(wants(announcement) for wants in _durable):
        return None
    return _outbox_write(announcement)


def would_keep(job_id: int, *moves: tuple[str, dict]) -> bool:
    """Whether any of these announcements (event, data) about a job would be written to the
    outbox now: a caller that could move rows outside a transaction opens one then."""
    if not _hooks or _outbox_write is None:
        return False
    return any(
        wants(Announcement(event, job_id, {"job_id": job_id, **data}))
        for event, data in moves
        for wants in _durable
    )


def job_changed(job_id: int, *, moved: bool = False, status: str | None = None) -> None:
    """A job's fields changed; `moved` when its status changed, to `status` when given (the
    transitions give it, and only they: it is announced as `job.status`)."""

    announcement = row = None
    if status is not None and _hooks:
        data = {"job_id": job_id, "status": str(status)}
        announcement = Announcement("job.status", job_id, data)
        row = _keep(announcement)

    def record(batch: Batch) -> None:
        batch.jobs[job_id] = moved or status is not None or batch.jobs.get(job_id, False)
        if announcement is not None:
            _announced(batch, announcement, row)

    transaction.on_commit(lambda: _add(record))


def subtask_changed(subtask_id: int, job_id: int, *, status: str | None = None) -> None:
    """A subtask's fields changed; `status` when a transition moved it there."""

    announcement = row = None
    if status is not None and _hooks:
        data = {"job_id": job_id, "subtask_id": subtask_id, "status": str(status)}
        announcement = Announcement("subtask.status", job_id, data)
        row = _keep(announcement)

    def record(batch: Batch) -> None:
        batch.subtasks[subtask_id] = job_id
        if announcement is not None:
            _announced(batch, announcement, row)

    transaction.on_commit(lambda: _add(record))


def state_changed(job_id: int, *, version: int | None = None) -> None:
    announcement = row = None
    if version is not None and _hooks:
        announcement = Announcement("state.version", job_id, {"job_id": job_id, "version": version})
        row = _keep(announcement)

    def record(batch: Batch) -> None:
        batch.states.add(job_id)
        if announcement is not None:
            _announced(batch, announcement, row)

    transaction.on_commit(lambda: _add(record))


def announce(event: str, job_id: int, data: dict) -> None:
    """Another fact for the hooks alone (a call finished), once the transaction commits."""
    if _hooks:
        announcement = Announcement(event, job_id, data)
        row = _keep(announcement)
        transaction.on_commit(lambda: _add(lambda batch: _announced(batch, announcement, row)))


def agent_changed(agent_id: int) -> None:
    """Load or metrics of an agent changed."""
    transaction.on_commit(lambda: _add(lambda batch: batch.agents.add(agent_id)))


def _add(record: Callable[[Batch], None]) -> None:
    with _lock:
        record(_batch)
        _wake.notify()
    if flusher.start():
        # Registered after the publisher's own exit hook, so it runs before it.
        atexit.register(flush_now)


def _take() -> Batch:
    global _batch
    batch, _batch = _batch, Batch()
    return batch


def _flush_forever() -> None:
    while not _stopping.is_set():
        with _lock:
            while not _batch and not _stopping.is_set():
                _wake.wait()
            # Let the window fill: everything announced meanwhile goes out in one render. The
            # window is read again at each wake-up, so one shortened meanwhile (a test after
            # one that set a long window) holds nobody up; flush_now emptying the batch or a
            # stop ends the wait (a stop still flushes what is pending).
            began = time.monotonic()
            while _batch and not _stopping.is_set():
                left = began + settings.LIVE_WINDOW_S - time.monotonic()
                if left <= 0:
                    break
                _wake.wait(left)
            batch = _take()
        flush_batch(batch)
        with _lock:
            idle = not _batch
        if idle:  # nothing more to render for now: give the database connection back
            connection.close()


def run_hooks(announcements: list[Announcement]) -> bool:
    """Hand announcements to every hook; whether all of them took them."""
    ok = True
    for hook in _hooks if announcements else ():
        try:
            hook(announcements)
        except Exception:  # one system's failure must not cost the others their events
            log.exception("an announcement hook failed")
            ok = False
    return ok


def flush_batch(batch: Batch) -> None:
    """Hand a batch's announcements to the hooks, and the batch to the publisher for the
    groups that some page watches."""
    if run_hooks(batch.announcements) and batch.outbox and _outbox_forget is not None:
        try:
            _outbox_forget(batch.outbox)
        except Exception:  # kept: a reconciler relays them again, under the same ids
            log.exception("could not delete relayed outbox rows")
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
        _wake.notify_all()  # a flusher waiting out its window has nothing left to wait for
    flush_batch(batch)


def _rouse() -> None:
    with _lock:
        _wake.notify_all()


flusher = threads.register("baton-live", __name__, _flush_forever, _stopping, _rouse)


def watch(group: str, delta: int) -> None:
    """Count the pages of this process open on a group (consumers call it), so nobody
    renders for no one."""
    with _lock:
        _local_watchers[group] = max(_local_watchers.get(group, 0) + delta, 0)
    if settings.REDIS_URL and delta > 0:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        pipe.set(WATCHED_PREFIX + group, 1, ex=WATCHERS_TTL_S)
        pipe.zadd(WATCHED_SET, {group: time.time() + WATCHERS_TTL_S})
        pipe.expire(WATCHED_SET, WATCHERS_TTL_S)
        pipe.execute()


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
        now = time.time()
        pipe.zadd(WATCHED_SET, dict.fromkeys(groups, now + WATCHERS_TTL_S))
        pipe.zremrangebyscore(WATCHED_SET, "-inf", now)
        pipe.expire(WATCHED_SET, WATCHERS_TTL_S)
        pipe.execute()
    return groups


def watched_groups() -> set[str]:
    """Every group some page watches, in one round trip whatever their number."""
    if settings.REDIS_URL:
        client = redis_client(settings.REDIS_URL)
        return {g.decode() for g in client.zrangebyscore(WATCHED_SET, time.time(), "+inf")}
    with _lock:
        return {group for group, n in _local_watchers.items() if n > 0}


def watched(*groups: str) -> list[bool]:
    """Whether some page watches each group, in one round trip."""
    if not groups:
        return []
    if settings.REDIS_URL:
        present = redis_client(settings.REDIS_URL).mget([WATCHED_PREFIX + g for g in groups])
        return [value is not None for value in present]
    with _lock:
        return [_local_watchers.get(group, 0) > 0 for group in groups]
