"""A running subtask's text as it arrives, for the pages that watch its job.

A subtask's call streams (`llm.complete(on_text=...)`) only while some page watches its job
(`events.watched_groups`, read at most once a second per process where Redis holds it): with
nobody watching, the call is the plain one and streaming costs nothing. A `Coalescer` sends
the call's text so far to the job's group at most every EVERY_S, and once more at the end.
Each message holds the whole text so far (its tail, for a very long answer), so one that is
lost costs nothing and the messages are not numbered; the page replaces the text with the
stored result when the subtask's fragment is rendered on completion.

The sender (dashboard.live.send_text) is registered at start-up, as the publisher of
agents.events is: this module renders nothing and imports nothing of the web face.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings

from . import events

log = logging.getLogger(__name__)

# At most four updates a second per streamed call.
EVERY_S = 0.25
# How long this process trusts its copy of the watched groups: a page opened meanwhile
# gets the text of the calls that start after the next read.
WATCHED_TTL_S = 1.0
# The page shows the tail of a longer answer.
MAX_CHARS = 20_000

Sender = Callable[[str, int, str], None]  # (group, subtask id, text so far)
_sender: Sender | None = None
# When the watched groups were read, and what they were.
_snapshot: tuple[float, set[str] | frozenset[str]] = (float("-inf"), frozenset())
_lock = threading.Lock()


def set_sender(sender: Sender | None) -> None:
    """The web face registers the function that sends a subtask's text to a group."""
    global _sender
    _sender = sender


def for_call(job_id: int, subtask_id: int) -> Coalescer | None:
    """The `on_text` of a subtask's call, or None (a plain call) when nobody watches."""
    if _sender is None or not settings.LLM_STREAM:
        return None
    group = events.job_group(job_id)
    if not _is_watched(group):
        return None
    return Coalescer(group, subtask_id, _sender)


def _is_watched(group: str) -> bool:
    """Whether a page watches `group`: where Redis holds the pages' presence, from this
    process's copy of every watched group, read again at most every WATCHED_TTL_S (one
    round trip a second per process, however many calls ask)."""
    global _snapshot
    if not settings.REDIS_URL:  # this process's own pages: a dictionary lookup
        return events.watched(group)[0]
    now = time.monotonic()
    with _lock:
        read_at, groups = _snapshot
        if now - read_at < WATCHED_TTL_S:
            return group in groups
        # Marked as read first: the other threads keep the old copy meanwhile.
        _snapshot = (now, groups)
    try:
        groups = events.watched_groups()
    except Exception:  # Redis away: the calls go on, plainly
        log.warning("could not read the watched groups", exc_info=True)
        groups = frozenset()
    with _lock:
        _snapshot = (now, groups)
    return group in groups


class Coalescer:
    """Called with each piece of a call's text; sends the text so far, a few times a second."""

    def __init__(self, group: str, subtask_id: int, sender: Sender) -> None:
        self.group = group
        self.subtask_id = subtask_id
        self.sender = sender
        self.text = ""
        self.sent_at = float("-inf")  # the first piece goes out at once
        self.pending = False
        self.sends = 0

    def __call__(self, piece: str) -> None:
        self.text += piece
        self.pending = True
        if time.monotonic() - self.sent_at >= EVERY_S:
            self._send()

    def finish(self) -> None:
        """The call ended: send what the last window held."""
        if self.pending:
            self._send()

    def _send(self) -> None:
        self.sent_at = time.monotonic()
        self.pending = False
        self.sends += 1
        try:
            self.sender(self.group, self.subtask_id, self.text[-MAX_CHARS:])
        except Exception:  # a failed push must never break the call
            log.exception("could not send the live text of subtask %s", self.subtask_id)
