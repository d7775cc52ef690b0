"""Server-Sent Events through their ASGI routes, in process (standalone feed, and Redis when
REDIS_URL is set), and from a running Daphne: a job's status events arrive, a client that
reconnects with Last-Event-ID gets exactly what followed, credentials as for the API."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from django.db import connections
from django.test import Client

from agents import events
from agents.models import ApiToken, Job, JobStatus, Subtask, SubtaskStatus
from stream import access, feed
from stream.routing import http_urlpatterns

from .cast import PASSWORD, person
from .stack import login, submit

FEEDS = ["memory", "redis"]
APP = URLRouter(http_urlpatterns)
HOST = {"Host": "testserver"}


class Stream:
    """One SSE request to the ASGI app, read event by event, then disconnected."""

    def __init__(self, path: str, headers: dict[str, str], method: str = "GET") -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in {**HOST, **headers}.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.sent: asyncio.Queue = asyncio.Queue()
        self.gone = asyncio.Event()
        self.buffer = ""
        self.status = 0
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> Stream:
        requested = False

        async def receive() -> dict:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        self.task = asyncio.create_task(APP(self.scope, receive, self.sent.put))
        start = await asyncio.wait_for(self.sent.get(), 10)
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gone.set()
        await asyncio.wait_for(self.task, 10)

    async def body(self) -> dict:
        message = await asyncio.wait_for(self.sent.get(), 10)
        return json.loads(message["body"])

    async def next(self, timeout: float = 10) -> dict:
        """The next event or comment: {"id", "event", "data"} or {"comment"}."""
        while "\n\n" not in self.buffer:
            message = await asyncio.wait_for(self.sent.get(), timeout)
            self.buffer += message.get("body", b"").decode()
        block, self.buffer = self.buffer.split("\n\n", 1)
        fields: dict = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                fields.setdefault("comment", value.strip())
            else:
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        return fields

    async def events(self, n: int, timeout: float = 10) -> list[dict]:
        """The next `n` events, comments skipped (within `timeout` in all: keep-alives
        alone do not keep a test waiting)."""
        found = []

        async def collect() -> None:
            while len(found) < n:
                item = await self.next(timeout)
                if "event" in item:
                    found.append(item)

        await asyncio.wait_for(collect(), timeout)
        return found


@pytest.fixture(params=FEEDS)
def feed_kind(request, settings):
    settings.SSE_KEEPALIVE_S = 0.3
    if request.param == "redis":
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.skip("the Redis feed needs REDIS_URL")
        settings.REDIS_URL = url
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest_asyncio.fixture(autouse=True)
async def close_thread_connections():
    """The ORM calls of these tests run in asgiref's one sync thread, the streams' in
    stream.access's: their connections are closed before the test database is dropped."""
    yield
    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(access.close_connections)  # and those of the streams' own threads


def bearer(user) -> dict[str, str]:
    _, secret = ApiToken.objects.issue(user, "sse")
    return {"Authorization": f"Bearer {secret}"}


async def settle() -> None:
    """Let what was announced reach the feed (the flusher's window, then this)."""
    await sync_to_async(events.flush_now)()
    await asyncio.sleep(0.3)


def move(job: Job, new: str) -> None:
    Job.objects.get(pk=job.pk).transition(job.status, new)
    job.status = new


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


async def answer(path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict]:
    async with Stream(path, headers, method) as stream:
        return stream.status, stream.headers | await stream.body()


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
