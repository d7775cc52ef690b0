"""The one place that publishes live changes.

Events are sent after commit, rendered once as server-side HTML fragments (htmx out-of-band
swaps), and fanned out to channel groups: `board`, `job-<id>` and `agents`, when some page
watches them. Consumers only forward.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import models, transaction
from django.template.loader import render_to_string

from .limiter import redis_client

log = logging.getLogger(__name__)

BOARD_GROUP = "board"
AGENTS_GROUP = "agents"
_loop: asyncio.AbstractEventLoop | None = None
_publisher_loop: asyncio.AbstractEventLoop | None = None
_publisher_lock = threading.Lock()
_pending: set[concurrent.futures.Future] = set()


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


WATCHERS_KEY = "baton:watchers"
_local_watchers: dict[str, int] = {}


def watch(group: str, delta: int) -> None:
    """Count the pages open on a group (consumers call it), so nobody renders for no one."""
    if settings.REDIS_URL:
        # Counts stay in the hash at zero: deleting them would race with a new watcher.
        redis_client(settings.REDIS_URL).hincrby(WATCHERS_KEY, group, delta)
    else:
        with _publisher_lock:
            _local_watchers[group] = max(_local_watchers.get(group, 0) + delta, 0)


def watched(*groups: str) -> list[bool]:
    """Whether some page watches each group, in one round trip."""
    if settings.REDIS_URL:
        counts = redis_client(settings.REDIS_URL).hmget(WATCHERS_KEY, groups)
        return [int(count or 0) > 0 for count in counts]
    return [_local_watchers.get(group, 0) > 0 for group in groups]


def bind_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the ASGI server's loop: the in-memory layer must be used from it alone."""
    global _loop
    _loop = loop


def job_changed(job_id: int, *, moved: bool = False) -> None:
    """A job's fields changed; `moved` when its status (its board column) changed.

    A moved job's page gets its whole subtask list and graph again, so bulk subtask changes
    that come with a status change need no events of their own.
    """
    transaction.on_commit(lambda: _safely(_publish_job, job_id, moved))


def subtask_changed(subtask_id: int, job_id: int) -> None:
    transaction.on_commit(lambda: _safely(_publish_subtask, subtask_id, job_id))


def state_changed(job_id: int) -> None:
    transaction.on_commit(lambda: _safely(_publish_state, job_id))


def agent_changed(agent_id: int) -> None:
    """Load or metrics of an agent changed."""
    transaction.on_commit(lambda: _safely(_publish_agent, agent_id))


def _safely(publish, *args) -> None:
    # A failed push must never undo or break the step that already committed.
    try:
        publish(*args)
    except Exception:
        log.exception("could not publish %s%s", publish.__name__, args)


def _publish_job(job_id: int, moved: bool) -> None:
    from .models import Job

    on_board, on_page = watched(BOARD_GROUP, job_group(job_id))
    if not (on_board or on_page):
        return
    job = Job.objects.for_board().filter(pk=job_id).first()
    if job is None:
        return
    context = {"job": job, "moved": moved, "counts": Job.objects.status_counts() if moved else {}}
    if on_board:
        send(BOARD_GROUP, render_to_string("dashboard/live/board_job.html", context))
    if on_page:
        if moved:
            context["subtasks"] = _plan(job_id)
        send(job_group(job_id), render_to_string("dashboard/live/job_header.html", context))


def _publish_subtask(subtask_id: int, job_id: int) -> None:
    from .models import Subtask

    if not watched(job_group(job_id))[0]:
        return
    sub = Subtask.objects.select_related("agent").filter(pk=subtask_id).first()
    if sub is None:
        return
    subtasks = _plan(sub.job_id)
    html = render_to_string("dashboard/live/subtask.html", {"sub": sub, "subtasks": subtasks})
    send(job_group(sub.job_id), html)


def _plan(job_id: int):
    from .models import LLMCall, Subtask

    return (
        Subtask.objects.filter(job_id=job_id)
        .select_related("agent")
        .prefetch_related("depends_on", models.Prefetch("calls", LLMCall.objects.order_by("pk")))
        .order_by("pk")
    )


def _publish_state(job_id: int) -> None:
    from .models import SharedState

    if not watched(job_group(job_id))[0]:
        return
    state = SharedState.objects.filter(job_id=job_id).first()
    if state is not None:
        send(job_group(job_id), render_to_string("dashboard/live/state.html", {"state": state}))


def _sending_loop(layer) -> asyncio.AbstractEventLoop | None:
    """The loop to send on: Daphne's when in the web process, else one of our own.

    A long-lived loop keeps channels_redis's connections open; async_to_sync would make a
    new loop, and new connections, for every event. The in-memory layer is not thread-safe
    and must be used from Daphne's loop alone (sending from a worker thread would not wake it).
    """
    global _publisher_loop
    if _loop is not None and _loop.is_running():
        return _loop
    if isinstance(layer, InMemoryChannelLayer):
        return None
    with _publisher_lock:
        if _publisher_loop is None:
            _publisher_loop = asyncio.new_event_loop()
            threading.Thread(
                target=_publisher_loop.run_forever, name="baton-events", daemon=True
            ).start()
    return _publisher_loop


def _publish_agent(agent_id: int) -> None:
    if not watched(AGENTS_GROUP)[0]:
        return
    from .models import Agent
    from .series import agent_series

    agent = Agent.objects.with_load().filter(pk=agent_id).first()
    if agent is not None:
        agent.series = agent_series([agent.pk])[agent.pk]
        html = render_to_string("dashboard/live/agent.html", {"agent": agent})
        send(AGENTS_GROUP, html)


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
    """Let events still on their way leave before a short-lived process (a command) exits."""
    concurrent.futures.wait(list(_pending), timeout=timeout)
