"""Renders the live fragments that agents.events announces, once per group, and sends them.

One window's changes become one message per watched group, rendered from what the database
holds now, so a page always converges to the newest state whatever it missed in between.

Where it renders: with Redis, every process forwards its batches to a Redis list and a
renderer thread in a web process takes them, merges what has arrived and renders once for
all of it, so workers spend no time on pages and several workers' changes to one job make
one render. Standalone (one process, no Redis), the batch is rendered where it was made.

How a page knows it missed nothing: each group's messages are numbered (an epoch, which a
flushed Redis renews, and a sequence number), and every web process tells the groups its
pages watch the number of their last message every `HEARTBEAT_S`. A page that sees a gap, or
hears nothing for a while, re-fetches itself; live.js does that part.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import logging
import secrets
import threading
import time
from collections import defaultdict

import redis
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.template.loader import render_to_string

from agents import events, threads
from agents import state as shared_state
from agents.events import AGENTS_GROUP, BOARD_GROUP, Batch, job_group
from agents.models import Agent, Job
from agents.queries import agents_with_metrics, board_jobs, job_activity, job_subtasks
from agents.redisconn import redis_client

from . import overview

log = logging.getLogger(__name__)
BATCHES_KEY = "baton:live:batches"
# With no web process taking them, batches must not pile up: keep the newest ones.
MAX_QUEUED_BATCHES = 1000
# live.js counts a page lost after three heartbeats without a word (its OVERDUE_MS).
HEARTBEAT_S = 2.0
EPOCH_KEY = "baton:live:epoch"
SEQ_PREFIX = "baton:live:seq:"
# A group's number outlives a day without messages; heartbeats keep a watched one alive.
SEQ_TTL_S = 86400
_local_epoch = secrets.token_hex(4)
_local_seqs: dict[str, int] = {}
_seq_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_own_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_pending: set[concurrent.futures.Future] = set()
OVERVIEW_GROUP = "overview"
# The live overview (the last hour) is rendered once per this many seconds at most.
OVERVIEW_EVERY_S = 5
OVERVIEW_TURN_KEY = "baton:live:overview:turn"
OVERVIEW_DIGEST_KEY = "baton:live:overview:digest"
_overview_sent = ""


def forward(batch: Batch) -> None:
    """Leave a batch for a web process's renderer (the publisher where Redis is set)."""
    pipe = redis_client(settings.REDIS_URL).pipeline()
    pipe.rpush(BATCHES_KEY, batch.to_json())
    pipe.ltrim(BATCHES_KEY, -MAX_QUEUED_BATCHES, -1)
    pipe.execute()


def start_renderer() -> None:
    """Take forwarded batches and render them, in a thread of this (web) process."""
    renderer.start()


def _render_forever() -> None:
    client = redis_client(settings.REDIS_URL)
    while True:
        try:
            # Shorter than redis-py's read timeout, so an idle wait is not an error.
            first = client.blpop([BATCHES_KEY], timeout=2)
            if first is None:
                continue
            batch = Batch.from_json(first[1])
            # Let the other processes' batches of this moment arrive: one render for all.
            time.sleep(settings.LIVE_WINDOW_S)
            for more in client.lpop(BATCHES_KEY, 1000) or []:
                batch.merge(Batch.from_json(more))
            publish(batch)
        except Exception:  # Redis restarting, a render failing: keep serving later batches
            log.exception("could not render live events")
            time.sleep(1)
        finally:
            close_old_connections()


renderer = threads.register("baton-render", __name__, _render_forever)


def start_heartbeat() -> None:
    """Beat the groups that this (web) process's pages watch, in a thread."""
    heartbeat.start()


def _beat_forever() -> None:
    while True:
        time.sleep(HEARTBEAT_S)
        try:
            beat()
        except Exception:  # Redis restarting: the pages notice the silence and reconnect
            log.exception("could not send the live heartbeat")


heartbeat = threads.register("baton-beat", __name__, _beat_forever)


def beat() -> None:
    """Renew the presence of the groups this process's pages watch, and send each of them
    the number of its last message: a page behind it missed one."""
    groups = events.renew_watchers()
    if groups:
        epoch, seqs = _last_seqs(groups)
        for group, seq in zip(groups, seqs, strict=True):
            _group_send(group, f"<!--beat {epoch} {seq}-->")
    if OVERVIEW_GROUP in groups:
        try:
            refresh_overview()
        finally:
            close_old_connections()


def refresh_overview() -> bool:
    """Re-render the last hour's overview for its watchers, at most every `OVERVIEW_EVERY_S`
    across all web processes, and only when it changed: its figures move as calls finish and
    as the hour slides, so a timer (the heartbeat's) catches both."""
    global _overview_sent
    if settings.REDIS_URL:
        client = redis_client(settings.REDIS_URL)
        if not client.set(OVERVIEW_TURN_KEY, 1, nx=True, ex=OVERVIEW_EVERY_S):
            return False
    html = overview.render_live()
    digest = hashlib.sha256(html.encode()).hexdigest()
    if settings.REDIS_URL:
        if client.getset(OVERVIEW_DIGEST_KEY, digest) == digest.encode():
            return False
        client.expire(OVERVIEW_DIGEST_KEY, SEQ_TTL_S)
    elif _overview_sent == digest:
        return False
    _overview_sent = digest
    send(OVERVIEW_GROUP, html)
    return True


def _next_seq(group: str) -> tuple[str, int]:
    """The epoch and the number of a group's next message."""
    if not settings.REDIS_URL:
        with _seq_lock:
            seq = _local_seqs[group] = _local_seqs.get(group, 0) + 1
        return _local_epoch, seq
    key = SEQ_PREFIX + group
    pipe = _numbering()
    pipe.incr(key)
    pipe.expire(key, SEQ_TTL_S)
    _, epoch, seq, _ = pipe.execute()
    return epoch.decode(), seq


def _last_seqs(groups: list[str]) -> tuple[str, list[int]]:
    """The epoch and the number of each group's last message (0 before any)."""
    if not settings.REDIS_URL:
        with _seq_lock:
            return _local_epoch, [_local_seqs.get(group, 0) for group in groups]
    keys = [SEQ_PREFIX + group for group in groups]
    pipe = _numbering()
    pipe.mget(keys)
    for key in keys:
        pipe.expire(key, SEQ_TTL_S)
    _, epoch, seqs, *_ = pipe.execute()
    return epoch.decode(), [int(seq or 0) for seq in seqs]


def _numbering() -> redis.client.Pipeline:
    """A MULTI that reads the epoch first, drawing a new one where Redis has none (flushed)."""
    pipe = redis_client(settings.REDIS_URL).pipeline()
    pipe.set(EPOCH_KEY, secrets.token_hex(4), nx=True)
    pipe.get(EPOCH_KEY)
    return pipe


def publish(batch: Batch) -> None:
    """Render and send one window of changes to the groups that are watched."""
    if BOARD_GROUP in batch.watched and batch.jobs:
        send(BOARD_GROUP, render_board(batch.jobs))
    if AGENTS_GROUP in batch.watched and batch.agents:
        agents = agents_with_metrics(Agent.objects.filter(pk__in=batch.agents))
        send(AGENTS_GROUP, render_to_string("dashboard/live/agents.html", {"agents": agents}))
    changed: dict[int, set[int]] = defaultdict(set)
    for subtask_id, job_id in batch.subtasks.items():
        changed[job_id].add(subtask_id)
    for job_id in {*batch.jobs, *changed, *batch.states}:
        group = job_group(job_id)
        if group in batch.watched:
            html = render_job(
                job_id, batch.jobs.get(job_id), changed[job_id], job_id in batch.states
            )
            if html.strip():
                send(group, html)


def render_board(jobs: dict[int, bool]) -> str:
    """Cards of the changed jobs, and the column counts when a card moved."""
    cards = list(board_jobs().filter(pk__in=jobs))
    for job in cards:
        job.moved = jobs[job.pk]
    counts = Job.objects.status_counts() if any(jobs.values()) else {}
    return render_to_string("dashboard/live/board.html", {"jobs": cards, "counts": counts})


def render_job(job_id: int, moved: bool | None, changed: set[int], state: bool) -> str:
    """A job page's changes: header (and the whole plan when the job moved), subtasks, state.

    `moved` is None when the job's own row did not change in this window.
    """
    # Rendered once for every watcher: `shared` leaves out what depends on who looks.
    context: dict = {"moved": bool(moved), "changed": [], "subtasks": None, "shared": True}
    if moved is not None:
        context["job"] = board_jobs().filter(pk=job_id).first()
        if context["job"] is None:
            return ""
    if moved or changed:
        subtasks = list(job_subtasks(job_id))
        context["subtasks"] = subtasks
        context["changed"] = [s for s in subtasks if s.pk in changed]
    if moved is not None or changed:
        # An operator's action on the job or a step (an approval, a cancel) is audited with it.
        context["audit"] = job_activity(job_id)
    if state:
        context["state"] = shared_state.for_page(job_id)
    return render_to_string("dashboard/live/job.html", context)


def bind_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the ASGI server's loop: the in-memory layer must be used from it alone."""
    global _loop
    _loop = loop


def _sending_loop(layer) -> asyncio.AbstractEventLoop | None:
    """The loop to send on: Daphne's when in the web process, else one of our own.

    A long-lived loop keeps channels_redis's connections open; async_to_sync would make a
    new loop, and new connections, for every send. The in-memory layer is not thread-safe
    and must be used from Daphne's loop alone (sending from a worker thread would not wake it).
    """
    global _own_loop
    if _loop is not None and _loop.is_running():
        return _loop
    if isinstance(layer, InMemoryChannelLayer):
        return None
    with _loop_lock:
        if _own_loop is None:
            _own_loop = asyncio.new_event_loop()
        sender.start()
    return _own_loop


def _run_own_loop() -> None:
    _own_loop.run_forever()


sender = threads.register("baton-send", __name__, _run_own_loop)


def send(group: str, html: str) -> None:
    """Fan a fragment out to a group, numbered, without blocking the caller."""
    epoch, seq = _next_seq(group)
    _group_send(group, f"<!--live {epoch} {seq}-->{html}")


def send_text(group: str, subtask_id: int, text: str) -> None:
    """A running subtask's text so far (agents.streaming), unnumbered: each message holds all
    of it, so a lost one costs nothing. live.js sets it as text, never as HTML."""
    _group_send(group, f"<!--text {subtask_id}-->{text}")


def _group_send(group: str, html: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "fragment", "html": html}
    loop = _sending_loop(layer)
    if loop is None:
        async_to_sync(layer.group_send)(group, message)
        return
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
    _pending.add(future)
    future.add_done_callback(_sent)


def _sent(future: concurrent.futures.Future) -> None:
    _pending.discard(future)
    if not future.cancelled() and future.exception() is not None:
        log.error("group_send failed: %r", future.exception())


@atexit.register
def flush(timeout: float = 2.0) -> None:
    """Let fragments still on their way leave before a short-lived process exits."""
    concurrent.futures.wait(list(_pending), timeout=timeout)
