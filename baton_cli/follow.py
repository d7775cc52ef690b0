"""Follow a job until it ends: live from its event stream, or by polling where the server has
no stream. Events carry ids and statuses, not the job's totals: an event is a cue to read the
job again (in a burst, only those that change its status or its count of subtasks done)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from httpx_sse import ServerSentEvent, SSEError

from .client import TERMINAL, Api, problem

POLL_S = 1.0
# Within a burst of events (a big plan at work) the job is read at most this often, except
# for what changes the progress line's status or count: those are always read.
MIN_READ_INTERVAL_S = 0.3
RECONNECTS = 3  # tries after a dropped stream before falling back to polling


class StreamUnavailable(Exception):
    """The server has no event stream (an older Baton), or it stopped answering one."""


def follow(api: Api, job_id: int, seen: Callable[[dict], None]) -> dict:
    """The job once it is completed, failed or cancelled; `seen` gets it each time it is read."""
    job = api.job(job_id)
    seen(job)
    if job["status"] in TERMINAL:
        return job
    try:
        return _stream(api, job_id, seen)
    except StreamUnavailable:
        return _poll(api, job_id, seen)


def _stream(api: Api, job_id: int, seen: Callable[[dict], None]) -> dict:
    last_id: str | None = None
    failures = 0
    read_at = 0.0
    while True:
        try:
            with api.events(job_id, last_id) as source:
                _check(source.response)
                failures = 0
                # A stream opened without Last-Event-ID starts with the job's status; one
                # resumed replays what was missed: either way the job is read again below.
                for event in source.iter_sse():
                    last_id = event.id or last_id
                    if not _worth_reading(event, time.monotonic() - read_at):
                        continue
                    read_at = time.monotonic()
                    job = api.job(job_id)
                    seen(job)
                    if job["status"] in TERMINAL:
                        return job
        except (httpx.TransportError, SSEError):
            pass
        failures += 1  # the connection dropped, or the server ended the stream
        if failures > RECONNECTS:
            raise StreamUnavailable
        time.sleep(min(2 ** (failures - 1), 5))


def _worth_reading(event: ServerSentEvent, since_read_s: float) -> bool:
    if event.event in ("job.status", "resync") or since_read_s >= MIN_READ_INTERVAL_S:
        return True
    if event.event == "subtask.status":  # a subtask that ended changes the count done
        try:
            data = event.json()
        except ValueError:
            return True
        return not isinstance(data, dict) or data.get("status") in TERMINAL
    return False


def _check(response: httpx.Response) -> None:
    """Refusals are the user's to see; anything else but a stream means polling instead."""
    if response.status_code in (401, 403):
        response.read()
        raise problem(response)
    content_type = response.headers.get("content-type", "")
    if response.status_code != 200 or not content_type.startswith("text/event-stream"):
        raise StreamUnavailable


def _poll(api: Api, job_id: int, seen: Callable[[dict], None]) -> dict:
    while True:
        time.sleep(POLL_S)
        job = api.job(job_id)
        seen(job)
        if job["status"] in TERMINAL:
            return job
