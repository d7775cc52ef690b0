"""The one place that publishes live changes.

Events are sent after commit, rendered once as server-side HTML fragments (htmx out-of-band
swaps), and fanned out to channel groups: `board` and `job-<id>`. Consumers only forward.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

BOARD_GROUP = "board"
_loop: asyncio.AbstractEventLoop | None = None


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def bind_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the ASGI server's loop: the in-memory layer must be used from it alone."""
    global _loop
    _loop = loop


def job_changed(job_id: int, *, moved: bool = False) -> None:
    """A job's fields changed; `moved` when its status (its board column) changed."""
    transaction.on_commit(lambda: _safely(_publish_job, job_id, moved))


def subtask_changed(subtask_id: int) -> None:
    transaction.on_commit(lambda: _safely(_publish_subtask, subtask_id))


def state_changed(job_id: int) -> None:
    transaction.on_commit(lambda: _safely(_publish_state, job_id))


def _safely(publish, *args) -> None:
    # A failed push must never undo or break the step that already committed.
    try:
        publish(*args)
    except Exception:
        log.exception("could not publish %s%s", publish.__name__, args)


def _publish_job(job_id: int, moved: bool) -> None:
    from .models import Job

    job = Job.objects.for_board().filter(pk=job_id).first()
    if job is None:
        return
    context = {"job": job, "moved": moved, "counts": Job.objects.status_counts() if moved else {}}
    send(BOARD_GROUP, render_to_string("dashboard/live/board_job.html", context))
    if moved:
        context["subtasks"] = job.subtasks.select_related("agent").order_by("pk")
    send(job_group(job_id), render_to_string("dashboard/live/job_header.html", context))


def _publish_subtask(subtask_id: int) -> None:
    from .models import Subtask

    sub = Subtask.objects.select_related("agent").filter(pk=subtask_id).first()
    if sub is None:
        return
    html = render_to_string("dashboard/live/subtask.html", {"sub": sub})
    send(job_group(sub.job_id), html)


def _publish_state(job_id: int) -> None:
    from .models import SharedState

    state = SharedState.objects.filter(job_id=job_id).first()
    if state is not None:
        send(job_group(job_id), render_to_string("dashboard/live/state.html", {"state": state}))


def send(group: str, html: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "fragment", "html": html}
    if isinstance(layer, InMemoryChannelLayer) and _loop is not None and _loop.is_running():
        # Sending from a worker thread via async_to_sync would not wake Daphne's loop.
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _loop)
        future.add_done_callback(_log_failure)
    else:
        async_to_sync(layer.group_send)(group, message)


def _log_failure(future) -> None:
    if future.exception() is not None:
        log.error("group_send failed: %r", future.exception())
