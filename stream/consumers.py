"""Server-Sent Events: `GET /api/v1/events` (every job) and `GET /api/v1/jobs/<id>/events`.

A plain ASGI app routed by Channels beside Django (orchestrator_site/asgi.py): a waiting
client costs a coroutine and, with Redis, one connection to it — no thread. (A Django async
view would not do: Django's ASGI handler keeps a thread for each request until its response
ends, for as long as a stream lasts.) Its few database reads go through Channels'
`database_sync_to_async`, which gives their connection back.

Events are `job.status`, `subtask.status`, `state.version` and `call.finished`, each with the
feed's id; a client that reconnects with `Last-Event-ID` gets exactly what followed (a
`resync` event first if some of that was trimmed away). A job's stream opens, when not
resuming, with the job's current status (`"snapshot": true`). Credentials as for the API:
a bearer token, else the session; the job page's permissions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from http import HTTPStatus

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest

from agents.models import Job
from dashboard.access import READ_PERMISSIONS

from . import feed

log = logging.getLogger(__name__)

RECONNECT_MS = 3000
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
    if scope["method"] not in ("GET", "HEAD"):
        await problem(send, path, 405, "Only GET.", [(b"allow", b"GET")])
        return
    headers = {name.decode("latin-1").lower(): v.decode("latin-1") for name, v in scope["headers"]}
    user, refused = await authenticate(headers, scope.get("user"))
    if refused:
        await problem(send, path, 401, refused, [(b"www-authenticate", b'Bearer realm="api"')])
        return
    # The events carry subtasks, calls and state versions: the job page's permissions.
    if not await database_sync_to_async(user.has_perms)(READ_PERMISSIONS["job"]):
        await problem(send, path, 403, "Reading events needs the Viewers role (or any role).")
        return
    last_id = headers.get("last-event-id", "").strip() or None
    if last_id is not None and not feed.ID_PATTERN.match(last_id):
        await problem(send, path, 400, "Last-Event-ID must be an id this stream sent.")
        return
    job_id = scope.get("url_route", {}).get("kwargs", {}).get("job_id")
    cursor = feed.Cursor(last_id)
    await cursor.open()  # before the snapshot: whatever moves after it follows in the stream
    try:
        snapshot = None
        if job_id is not None:
            status = await database_sync_to_async(_job_status)(job_id)
            if status is None:
                await problem(send, path, 404, f"No job {job_id}.")
                return
            if last_id is None or cursor.gap:
                snapshot = {"job_id": job_id, "status": status, "snapshot": True}
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        pump = asyncio.create_task(_pump(send, events(cursor, job_id, snapshot)))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # the client left, the stream failed, or the server is stopping
            for task in (pump, gone):
                task.cancel()
            failed, _ = await asyncio.gather(pump, gone, return_exceptions=True)
        if isinstance(failed, Exception):
            log.error("event stream failed", exc_info=failed)
            await send({"type": "http.response.body", "body": b""})
    finally:
        await cursor.close()


def _job_status(job_id: int) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


async def _pump(send, chunks: AsyncIterator[str]) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def events(
    cursor: feed.Cursor, job_id: int | None, snapshot: dict | None
) -> AsyncIterator[str]:
    """The stream's text: what follows the cursor (for one job, or all), with keep-alives."""
    keepalive_s = settings.SSE_KEEPALIVE_S
    yield f": connected\nretry: {RECONNECT_MS}\n\n"
    if cursor.gap:
        expired = {"reason": "some events after Last-Event-ID are no longer kept"}
        yield message(cursor.last_id, "resync", expired)
    if snapshot is not None:
        yield message(cursor.last_id, "job.status", snapshot)
    quiet_since = time.monotonic()
    while True:
        wait = max(keepalive_s - (time.monotonic() - quiet_since), 0.0)
        entries = await cursor.read(wait)
        chunk = "".join(
            message(e.id, e.event, e.data) for e in entries if job_id is None or e.job_id == job_id
        )
        if chunk:
            yield chunk
        elif time.monotonic() - quiet_since >= keepalive_s:
            yield ": keep-alive\n\n"
        else:
            continue
        quiet_since = time.monotonic()


def message(entry_id: str, event: str, data: str | dict) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"id: {entry_id}\nevent: {event}\ndata: {text}\n\n"


async def authenticate(headers: dict[str, str], session_user) -> tuple[object, str | None]:
    """The API's bearer token when one is sent, else the session (the API's order); the
    user, or why not."""
    authorization = headers.get("authorization", "")
    if authorization.split(" ")[0].lower() == "bearer":
        from rest_framework.exceptions import AuthenticationFailed

        from api.auth import BearerTokenAuthentication

        request = HttpRequest()  # what the authenticator reads of one: its headers
        request.META["HTTP_AUTHORIZATION"] = authorization
        try:
            user, _ = await database_sync_to_async(BearerTokenAuthentication().authenticate)(
                request
            )
        except AuthenticationFailed as exc:
            return None, str(exc.detail)
        return user, None
    if session_user is None or not session_user.is_authenticated:
        return None, "Send an API token (Authorization: Bearer …) or log in."
    return session_user, None


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
