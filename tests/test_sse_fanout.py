"""One reader of the feed per process, whatever the number of streams; a client far behind
(on reconnecting, or live) is told to resync instead of being replayed everything."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import redis
from asgiref.sync import sync_to_async

from agents.models import Job
from stream import fanout, feed

from .cast import person
from .sse_client import Stream, bearer, settle

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("close_thread_connections")]


@pytest.mark.usefixtures("feed_kind")
async def test_a_client_too_far_behind_resyncs_instead_of_a_replay(transactional_db, settings):
    settings.SSE_REPLAY_MAX = 5
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    async with Stream("/api/v1/events", headers) as stream:
        jobs = [await Job.objects.acreate(title=f"J{i}", description="D") for i in range(9)]
        seen = await stream.events(9)
    assert [e["data"]["job_id"] for e in seen] == [job.pk for job in jobs]

    # 5 back: exactly those.
    async with Stream("/api/v1/events", {**headers, "Last-Event-ID": seen[3]["id"]}) as stream:
        replayed = await stream.events(5)
    assert [e["id"] for e in replayed] == [e["id"] for e in seen[4:]]
    # 8 events followed the first: more than SSE_REPLAY_MAX.
    for far_back in (seen[0]["id"], "0-0"):
        async with Stream("/api/v1/events", {**headers, "Last-Event-ID": far_back}) as stream:
            [resync] = await stream.events(1)
            assert resync["event"] == "resync"
            assert "more than 5" in resync["data"]["reason"]
            newer = await Job.objects.acreate(title="After", description="D")
            [first] = await stream.events(1)
            assert first["data"]["job_id"] == newer.pk  # from now on, nothing replayed


@pytest.mark.usefixtures("feed_kind")
async def test_a_job_stream_too_far_behind_gets_a_snapshot(transactional_db, settings):
    settings.SSE_REPLAY_MAX = 2
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    job = await Job.objects.acreate(title="Watched", description="D")
    for i in range(3):
        await Job.objects.acreate(title=f"Other {i}", description="D")
    await settle()
    path = f"/api/v1/jobs/{job.pk}/events"
    async with Stream(path, {**headers, "Last-Event-ID": "0-0"}) as stream:
        resync, snapshot = await stream.events(2)
    assert resync["event"] == "resync"
    assert snapshot["data"] == {"job_id": job.pk, "status": "queued", "snapshot": True}


async def test_a_slow_client_is_told_to_resync(transactional_db, settings, monkeypatch):
    settings.REDIS_URL = ""
    monkeypatch.setattr(fanout, "QUEUE_MAX", 3)
    cursor = fanout.Cursor(None)
    await cursor.open()
    try:
        feed.local.append([("job.status", 1, json.dumps({"n": n})) for n in range(4)])
        await asyncio.sleep(0.1)  # the hub fans them out; this client reads none of them
        assert await cursor.read(1) == []
        assert cursor.resync == "this client fell behind the feed"
        feed.local.append([("job.status", 1, json.dumps({"n": "next"}))])
        [entry] = await cursor.read(5)
        assert json.loads(entry.data) == {"n": "next"}
    finally:
        await cursor.close()


async def test_streams_share_one_reader_of_the_local_feed(transactional_db, settings):
    settings.REDIS_URL = ""
    settings.SSE_MAX_PER_USER = 20
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    streams = [Stream("/api/v1/events", headers) for _ in range(5)]
    for stream in streams:
        await stream.__aenter__()
        await stream.next()  # connected
    try:
        assert len(feed.local.waiters) == 1
    finally:
        for stream in streams:
            await stream.__aexit__()
    assert len(feed.local.waiters) == 0  # the reader stops with the last stream


def xread_clients(url: str) -> int:
    """Connections to this Redis database blocked in (or last running) XREAD."""
    client = redis.Redis.from_url(url)
    try:
        db = client.connection_pool.connection_kwargs.get("db", 0)
        return sum(
            1 for c in client.client_list() if int(c["db"]) == int(db) and c["cmd"] == "xread"
        )
    finally:
        client.close()


async def test_streams_share_one_redis_connection(transactional_db, settings):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("the Redis feed needs REDIS_URL")
    settings.REDIS_URL = url
    settings.SSE_MAX_PER_USER = 20
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    job = await Job.objects.acreate(title="Before", description="D")
    await settle()
    streams = [Stream("/api/v1/events", headers) for _ in range(12)]
    for stream in streams:
        await stream.__aenter__()
    try:
        await Job.objects.acreate(title="Seen by all", description="D")
        for stream in streams:  # every stream has read (and is reading again)
            [event] = await stream.events(1)
            assert event["data"]["job_id"] != job.pk
        await asyncio.sleep(0.3)
        assert await asyncio.to_thread(xread_clients, url) == 1
    finally:
        for stream in streams:
            await stream.__aexit__()
