"""Server-Sent Events: `GET /api/v1/events` (every job) and `GET /api/v1/jobs/<id>/events`.

A plain ASGI app routed by Channels beside Django (orchestrator_site/asgi.py): a waiting
client costs a coroutine and a bounded queue, no thread and no connection of its own; one
task per process reads the feed and fans it out (stream.fanout). (A Django async view would
not do: Django's ASGI handler keeps a thread for each request until its response ends.)

Before a stream opens: the Host is checked against ALLOWED_HOSTS (400), `Last-Event-ID`
must be an id the feed could have sent (400), and the process holds at most
`SSE_MAX_STREAMS` streams and `SSE_MAX_PER_USER` per user (429 with Retry-After), counted
by the credential presented before any query. Credentials as for the API (a bearer token,
else the session) and the job page's permissions, checked on stream.access's own threads,
and again at each keep-alive (at least every RECHECK_MAX_S): a revoked token, a closed
session or a lost role ends the stream.

Events are `job.status`, `subtask.status`, `state.version` and `call.finished`, each with the
feed's id; a client that reconnects with `Last-Event-ID` gets exactly what followed, or a
`resync` event (then what follows from now) when that was more than `SSE_REPLAY_MAX`
events, was trimmed away, or the client fell behind a live stream. A job's stream opens,
when not resuming, with the job's current status (`"snapshot": true`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest

from . import access, fanout, feed

log = logging.getLogger(__name__)
security_log = logging.getLogger("django.security.DisallowedHost")

RECONNECT_MS = 3000
RETRY_AFTER_S = 10
RECHECK_MAX_S = 15.0  # a stream's holder is checked again at least this often
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream"),  # UTF-8, always
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # a proxy in front must not hold events back
    (b"x-content-type-options", b"nosniff"),
]


async def event_stream(scope: dict, receive, send) -> None:
    """The ASGI app of both endpoints (the job's id, if any, comes from the URL route)."""
    while (await receive()).get("more_body"):  # a GET has no body worth reading
        pass
    path = scope["path"]
    request = ASGIRequest(scope, io.BytesIO())
    try:
        request.get_host()  # as Django checks every request: the Host is one of ours
    except DisallowedHost as exc:
        security_log.warning("%s", exc)
        await problem(send, path, 400, "The Host header is not one this server answers for.")
        return
    if scope["method"] not in ("GET", "HEAD"):
        await problem(send, path, 405, "Only GET.", [(b"allow", b"GET")])
        return
    last_id = request.META.get("HTTP_LAST_EVENT_ID", "").strip() or None
    if last_id is not None:
        last_id = feed.parse_id(last_id)
        if last_id is None:
            await problem(send, path, 400, "Last-Event-ID must be an id this stream sent.")
            return
    credential, refused = access.credential(request)
    if credential is None:
        await problem(send, path, 401, refused, [(b"www-authenticate", b'Bearer realm="api"')])
        return
    held: list[str] = []
    try:
        for key in (access.TOTAL, credential.key):
            if not access.places.take(key):
                await too_many(send, path, key == access.TOTAL)
                return
            held.append(key)
        holder, status, refused = await access.authenticate(credential)
        if holder is None:
            auth = [(b"www-authenticate", b'Bearer realm="api"')] if status == 401 else []
            await problem(send, path, status, refused, auth)
            return
        if not access.places.take(holder.key):
            await too_many(send, path, False)
            return
        held.append(holder.key)
        await respond(scope, receive, send, holder, last_id)
    finally:
        for key in held:
            access.places.give_back(key)


async def too_many(send, path: str, everyone: bool) -> None:
    detail = (
        "This server holds as many event streams as it may (SSE_MAX_STREAMS)."
        if everyone
        else f"At most {settings.SSE_MAX_PER_USER} event streams per user (SSE_MAX_PER_USER)."
    )
    await problem(send, path, 429, detail, [(b"retry-after", str(RETRY_AFTER_S).encode())])


async def respond(scope: dict, receive, send, holder: access.Holder, last_id: str | None):
    path = scope["path"]
    job_id = scope.get("url_route", {}).get("kwargs", {}).get("job_id")
    cursor = fanout.Cursor(last_id, job_id)
    await cursor.open()  # before the snapshot: whatever moves after it follows in the stream
    try:
        snapshot = None
        if job_id is not None:
            status = await access.job_status(job_id)
            if status is None:
                await problem(send, path, 404, f"No job {job_id}.")
                return
            if last_id is None or cursor.resync:
                snapshot = {"job_id": job_id, "status": status, "snapshot": True}
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        pump = asyncio.create_task(_pump(send, events(cursor, holder, snapshot)))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # the client left, the stream ended or failed, or the server is stopping
            for task in (pump, gone):
                task.cancel()
            ended, _ = await asyncio.gather(pump, gone, return_exceptions=True)
        if isinstance(ended, Exception):
            log.error("event stream failed", exc_info=ended)
        if gone.cancelled():  # the client is still there: end the response
            await send({"type": "http.response.body", "body": b""})
    finally:
        await cursor.close()


async def _pump(send, chunks: AsyncIterator[str]) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def events(
    cursor: fanout.Cursor, holder: access.Holder, snapshot: dict | None
) -> AsyncIterator[str]:
    """The stream's text: what follows the cursor, with keep-alives; it ends when the
    holder may no longer read (checked at each keep-alive, at least every RECHECK_MAX_S)."""
    keepalive_s = settings.SSE_KEEPALIVE_S
    recheck_s = min(keepalive_s, RECHECK_MAX_S)
    yield f": connected\nretry: {RECONNECT_MS}\n\n"
    quiet_since = checked_at = time.monotonic()
    while True:
        if cursor.resync:
            yield message(cursor.last_id, "resync", {"reason": cursor.resync})
            cursor.resync = None
        if snapshot is not None:
            yield message(cursor.last_id, "job.status", snapshot)
            snapshot = None
        wait = max(keepalive_s - (time.monotonic() - quiet_since), 0.0)
        entries = await cursor.read(min(wait, recheck_s))
        quiet = time.monotonic() - quiet_since >= keepalive_s
        if not entries and not quiet and not cursor.resync:
            continue
        if quiet or time.monotonic() - checked_at >= recheck_s:
            if not await access.still_allowed(holder):
                return  # nothing more for this holder, not even what was just read
            checked_at = time.monotonic()
        if entries:
            yield "".join(message(e.id, e.event, e.data) for e in entries)
        elif quiet:
            yield ": keep-alive\n\n"
        else:
            continue
        quiet_since = time.monotonic()


def message(entry_id: str, event: str, data: str | dict) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"id: {entry_id}\nevent: {event}\ndata: {text}\n\n"


async def problem(send, path: str, status: int, detail: str, headers: list | None = None) -> None:
    """An RFC 9457 problem, as the rest of the API answers."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": path,
    }
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/problem+json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
