"""Server-Sent Events through their ASGI routes, in process (standalone feed, and Redis when
REDIS_URL is set), and from a running Daphne: a job's status events arrive, a client that
reconnects with Last-Event-ID gets exactly what followed, credentials as for the API."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from agents.models import Job, JobStatus, Subtask, SubtaskStatus
from stream import feed

from .cast import PASSWORD, person
from .sse_client import Stream, answer, bearer, move, settle
from .stack import login, submit

pytestmark = pytest.mark.usefixtures("close_thread_connections")


@pytest.mark.asyncio
async def test_a_job_stream_resumes_after_its_last_event_id(feed_kind, transactional_db):
    user = await sync_to_async(person)("carol")
    headers = await sync_to_async(bearer)(user)
    job = await Job.objects.acreate(title="Watched", description="D")
    other = await Job.objects.acreate(title="Not watched", description="D")
    await settle()
    path = f"/api/v1/jobs/{job.pk}/events"

    async with Stream(path, headers) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert (await stream.next()) == {"comment": "connected", "retry": "3000"}
        [snapshot] = await stream.events(1)
        assert snapshot["event"] == "job.status"
        assert snapshot["data"] == {"job_id": job.pk, "status": "queued", "snapshot": True}

        await sync_to_async(move)(job, JobStatus.PLANNING)
        await sync_to_async(move)(other, JobStatus.PLANNING)
        await sync_to_async(move)(job, JobStatus.WORKING)
        sub = await Subtask.objects.acreate(job=job, key="a", type="research")
        await sync_to_async(sub.transition)(SubtaskStatus.WAITING, SubtaskStatus.QUEUED)
        seen = await stream.events(3)
    assert [(e["event"], e["data"]["status"]) for e in seen] == [
        ("job.status", "planning"),
        ("job.status", "working"),
        ("subtask.status", "queued"),
    ]
    assert seen[2]["data"]["subtask_id"] == sub.pk
    ids = [feed.key(e["id"]) for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == 3

    # Missed while disconnected:
    await sync_to_async(sub.transition)(SubtaskStatus.QUEUED, SubtaskStatus.COMPLETED)
    await sync_to_async(move)(job, JobStatus.COMPLETED)
    await settle()

    async with Stream(path, {**headers, "Last-Event-ID": seen[1]["id"]}) as stream:
        again = await stream.events(3)
        assert [(e["event"], e["data"]["status"]) for e in again] == [
            ("subtask.status", "queued"),  # the first event after the one given
            ("subtask.status", "completed"),
            ("job.status", "completed"),
        ]
        assert again[0]["id"] == seen[2]["id"]
        # Then nothing but keep-alive comments.
        assert await stream.next(2) == {"comment": "keep-alive"}


@pytest.mark.asyncio
async def test_the_all_jobs_stream_carries_every_job(feed_kind, transactional_db):
    user = await sync_to_async(person)("carol")
    headers = await sync_to_async(bearer)(user)
    first = await Job.objects.acreate(title="One", description="D")
    second = await Job.objects.acreate(title="Two", description="D")
    await settle()
    async with Stream("/api/v1/events", headers) as stream:
        await sync_to_async(move)(first, JobStatus.CANCELLED)
        await sync_to_async(move)(second, JobStatus.PLANNING)
        found = await stream.events(2)
    assert [(e["data"]["job_id"], e["data"]["status"]) for e in found] == [
        (first.pk, "cancelled"),
        (second.pk, "planning"),
    ]


@pytest.mark.asyncio
async def test_the_session_is_a_credential_too(transactional_db, settings):
    settings.REDIS_URL = ""
    user = await sync_to_async(person)("bob")
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    async with Stream("/api/v1/events", cookie) as stream:
        assert stream.status == 200


@pytest.mark.asyncio
async def test_a_client_told_when_events_it_missed_were_trimmed(
    transactional_db, settings, monkeypatch
):
    settings.REDIS_URL = ""
    monkeypatch.setattr(feed, "local", feed.LocalFeed(maxlen=3))
    user = await sync_to_async(person)("carol")
    headers = await sync_to_async(bearer)(user)
    feed.local.append([("job.status", 1, json.dumps({"job_id": 1, "status": "working"}))])
    kept_after = feed.local.position()
    feed.local.append([("job.status", 0, "{}")] * 3)  # pushes the next one out
    async with Stream("/api/v1/events", {**headers, "Last-Event-ID": "1-0"}) as stream:
        resync = (await stream.events(1))[0]
        assert resync["event"] == "resync"
    async with Stream("/api/v1/events", {**headers, "Last-Event-ID": kept_after}) as stream:
        first = (await stream.events(1))[0]
        assert first["event"] == "job.status"  # nothing lost after that id


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/jobs/1/events"])
async def test_anonymous_clients_and_bad_tokens_get_a_401(transactional_db, path):
    status, body = await answer(path, {})
    assert status == 401
    assert body["content-type"] == "application/problem+json"
    assert body["www-authenticate"] == 'Bearer realm="api"'
    assert body["instance"] == path
    status, body = await answer(path, {"Authorization": "Bearer baton_0123_nope"})
    assert (status, body["detail"]) == (401, "This token is not valid.")


@pytest.mark.asyncio
async def test_a_user_without_a_role_gets_a_403(transactional_db):
    user = await sync_to_async(person)("eve")
    headers = await sync_to_async(bearer)(user)
    assert (await answer("/api/v1/events", headers))[0] == 403


@pytest.mark.asyncio
async def test_an_unknown_job_a_bad_last_event_id_or_a_post_is_refused(transactional_db, settings):
    settings.REDIS_URL = ""
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    assert (await answer("/api/v1/jobs/999999/events", headers))[0] == 404
    bad = {**headers, "Last-Event-ID": "yesterday"}
    assert (await answer("/api/v1/events", bad))[0] == 400
    status, body = await answer("/api/v1/events", headers, method="POST")
    assert (status, body["allow"]) == (405, "GET")


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_a_running_daphne_streams_a_job_and_resumes(stack, seeded):
    """httpx against the real server: every job's events while one is submitted, until it
    completes; then its own stream, resumed from the middle, replays exactly the rest."""
    browser = login(stack.base_url, "bob", PASSWORD)
    with browser.stream("GET", f"{stack.base_url}/api/v1/events", timeout=60) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines) == ": connected"  # the stream is open: nothing is missed from here
        submit(browser, "Streamed job", "Summarise the news of the day.")
        job = Job.objects.filter(title="Streamed job").latest("pk")
        seen = until_completed(lines, job.pk)
    assert [e["data"]["status"] for e in seen if e["event"] == "job.status"][-1] == "completed"
    assert {"call.finished", "subtask.status", "state.version"} <= {e["event"] for e in seen}
    middle = len(seen) // 2
    url = f"{stack.base_url}/api/v1/jobs/{job.pk}/events"
    headers = {"Last-Event-ID": seen[middle]["id"]}
    with browser.stream("GET", url, headers=headers, timeout=60) as response:
        rest = until_completed(response.iter_lines(), job.pk)
    assert [e["id"] for e in rest] == [e["id"] for e in seen[middle + 1 :]]
    assert rest[0]["id"] != seen[middle]["id"]


def until_completed(lines, job_id: int) -> list[dict]:
    """The job's events from an SSE line iterator, up to the one that completes it."""
    found: list[dict] = []
    block: dict = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            if name:
                block[name] = value.removeprefix(" ")
            continue
        if "event" in block:
            block["data"] = json.loads(block["data"])
            if block["data"].get("job_id") == job_id:
                found.append(block)
                if block["event"] == "job.status" and block["data"]["status"] == "completed":
                    return found
        block = {}
    raise AssertionError(f"the stream ended before the job completed: {found}")
