"""Server-Sent Events: `GET /api/v1/events` (every job) and `GET /api/v1/jobs/<id>/events`.

Async views streaming from an async generator: Daphne holds a waiting client on its event
loop, not on a thread. Events are `job.status`, `subtask.status`, `state.version` and
`call.finished`, each with the feed's id; a client that reconnects with `Last-Event-ID` gets
exactly what followed it (and a `resync` event first if some of that was trimmed away). A
job's stream opens, when not resuming, with the job's current status (`"snapshot": true`).
Same credentials and permissions as the API and the job page: a bearer token or the session.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from http import HTTPStatus

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from agents.models import Job
from dashboard.access import READ_PERMISSIONS

from . import feed

RECONNECT_MS = 3000


@require_GET
async def all_events(request: HttpRequest) -> HttpResponse:
    return await _serve(request, None)


@require_GET
async def job_events(request: HttpRequest, job_id: int) -> HttpResponse:
    return await _serve(request, job_id)


async def _serve(request: HttpRequest, job_id: int | None) -> HttpResponse:
    user, refused = await _authenticate(request)
    if refused is not None:
        return refused
    # The events carry subtasks, calls and state versions: the job page's permissions.
    if not await user.ahas_perms(READ_PERMISSIONS["job"]):
        return problem(request, 403, "Reading events needs the Viewers role (or any role).")
    last_id = request.headers.get("Last-Event-ID", "").strip() or None
    if last_id is not None and not feed.ID_PATTERN.match(last_id):
        return problem(request, 400, "Last-Event-ID must be an id this stream sent.")
    cursor = feed.Cursor(last_id)
    await cursor.open()  # before the snapshot: whatever moves after it follows in the stream
    snapshot = None
    if job_id is not None:
        job = await Job.objects.filter(pk=job_id).values("status").afirst()
        if job is None:
            await cursor.close()
            return problem(request, 404, f"No job {job_id}.")
        if last_id is None or cursor.gap:
            snapshot = {"job_id": job_id, "status": job["status"], "snapshot": True}
    # The stream reads no more rows: this request's thread must not hold a database
    # connection for as long as the client stays (hours, for thousands of clients).
    await sync_to_async(connections.close_all)()
    response = StreamingHttpResponse(
        _events(cursor, job_id, snapshot, settings.SSE_KEEPALIVE_S),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold events back
    return response


async def _events(
    cursor: feed.Cursor, job_id: int | None, snapshot: dict | None, keepalive_s: float
) -> AsyncIterator[str]:
    try:
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
                message(e.id, e.event, e.data)
                for e in entries
                if job_id is None or e.job_id == job_id
            )
            if chunk:
                yield chunk
            elif time.monotonic() - quiet_since >= keepalive_s:
                yield ": keep-alive\n\n"
            else:
                continue
            quiet_since = time.monotonic()
    finally:  # the client went away (Django cancels the stream) or the server stops
        await cursor.close()


def message(entry_id: str, event: str, data: str | dict) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"id: {entry_id}\nevent: {event}\ndata: {text}\n\n"


async def _authenticate(request: HttpRequest) -> tuple[object, HttpResponse | None]:
    """The API's bearer token when one is sent, else the session (as the API's order)."""
    if request.headers.get("Authorization", "").split(" ")[0].lower() == "bearer":
        from rest_framework.exceptions import AuthenticationFailed

        from api.auth import BearerTokenAuthentication

        try:
            user, _ = await sync_to_async(BearerTokenAuthentication().authenticate)(request)
        except AuthenticationFailed as exc:
            return None, problem(request, 401, str(exc.detail))
        return user, None
    user = await request.auser()
    if not user.is_authenticated:
        return None, problem(request, 401, "Send an API token (Authorization: Bearer …).")
    return user, None


def problem(request: HttpRequest, status: int, detail: str) -> HttpResponse:
    """An RFC 9457 problem, as the rest of the API answers."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.get_full_path(),
    }
    response = JsonResponse(body, status=status, content_type="application/problem+json")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
