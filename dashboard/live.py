"""Renders the live fragments that agents.events announces, once per group, and sends them.

Runs wherever a step committed (a worker, or the web process): one window's changes become
one message per watched group, rendered from what the database holds now, so a page always
converges to the newest state whatever it missed in between.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.template.loader import render_to_string

from agents.events import AGENTS_GROUP, BOARD_GROUP, Batch, job_group
from agents.models import Agent, Job, SharedState

from .queries import agents_with_metrics, board_jobs, job_subtasks

log = logging.getLogger(__name__)
_loop: asyncio.AbstractEventLoop | None = None
_own_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_pending: set[concurrent.futures.Future] = set()


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
    context: dict = {"moved": bool(moved), "changed": [], "subtasks": None}
    if moved is not None:
        context["job"] = board_jobs().filter(pk=job_id).first()
        if context["job"] is None:
            return ""
    if moved or changed:
        subtasks = list(job_subtasks(job_id))
        context["subtasks"] = subtasks
        context["changed"] = [s for s in subtasks if s.pk in changed]
    if state:
        context["state"] = SharedState.objects.filter(job_id=job_id).first()
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
            threading.Thread(target=_own_loop.run_forever, name="baton-send", daemon=True).start()
    return _own_loop


def send(group: str, html: str) -> None:
    """Fan a fragment out to a group without blocking the caller."""
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
