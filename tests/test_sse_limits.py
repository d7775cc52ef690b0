"""What the event streams refuse before they open: too many streams (per user, in all), a
Host this server does not answer for, an id the feed could never have sent; and their
authentication does not queue behind Channels' one shared sync thread."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from .cast import person, user_in
from .sse_client import Stream, answer, bearer

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("close_thread_connections")]


@pytest.fixture
def small_limits(settings):
    settings.REDIS_URL = ""
    settings.SSE_MAX_PER_USER = 2
    settings.SSE_MAX_STREAMS = 4


async def test_a_user_holds_at_most_sse_max_per_user_streams(transactional_db, small_limits):
    carol = await sync_to_async(person)("carol")
    headers = await sync_to_async(bearer)(carol)
    other_token = await sync_to_async(bearer)(carol)
    path = "/api/v1/events"
    async with Stream(path, headers) as one, Stream(path, headers) as two:
        assert (one.status, two.status) == (200, 200)
        status, body = await answer(path, headers)
        assert status == 429
        assert body["content-type"] == "application/problem+json"
        assert body["retry-after"].isdigit()
        assert "SSE_MAX_PER_USER" in body["detail"]
        # Another token of the same user counts as the same user.
        assert (await answer(path, other_token))[0] == 429
        # Someone else is not refused.
        bob = await sync_to_async(person)("bob")
        async with Stream(path, await sync_to_async(bearer)(bob)) as theirs:
            assert theirs.status == 200
    # Places come back when streams end.
    async with Stream(path, headers) as again:
        assert again.status == 200


async def test_a_process_holds_at_most_sse_max_streams(transactional_db, small_limits):
    path = "/api/v1/events"
    users = [await sync_to_async(user_in)("Viewers", name) for name in ("a", "b", "c")]
    tokens = [await sync_to_async(bearer)(user) for user in users]
    async with (
        Stream(path, tokens[0]) as s1,
        Stream(path, tokens[0]) as s2,
        Stream(path, tokens[1]) as s3,
        Stream(path, tokens[1]) as s4,
    ):
        assert {s.status for s in (s1, s2, s3, s4)} == {200}
        status, body = await answer(path, tokens[2])
        assert status == 429
        assert "SSE_MAX_STREAMS" in body["detail"]


async def test_sessions_are_counted_too(transactional_db, small_limits):
    bob = await sync_to_async(person)("bob")
    client = Client()
    await sync_to_async(client.force_login)(bob)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    async with Stream("/api/v1/events", cookie), Stream("/api/v1/events", cookie):
        assert (await answer("/api/v1/events", cookie))[0] == 429


async def test_authentication_does_not_wait_for_the_shared_sync_thread(transactional_db, settings):
    """Channels' `database_sync_to_async` runs everything on one thread: a stream's
    authentication must not queue behind whatever holds it (thousands of other opens)."""
    settings.REDIS_URL = ""
    carol = await sync_to_async(person)("carol")
    headers = await sync_to_async(bearer)(carol)
    bob = await sync_to_async(person)("bob")
    client = Client()
    await sync_to_async(client.force_login)(bob)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    held = threading.Event()
    blocker = asyncio.create_task(sync_to_async(held.wait)())  # the shared thread, busy
    try:
        async with Stream("/api/v1/events", headers) as by_token:
            assert by_token.status == 200
        async with Stream("/api/v1/events", cookie) as by_session:
            assert by_session.status == 200
        assert not blocker.done()
    finally:
        held.set()
        await blocker


async def test_a_host_not_in_allowed_hosts_gets_a_400(transactional_db, settings):
    settings.REDIS_URL = ""
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    status, body = await answer("/api/v1/events", {**headers, "Host": "evil.example"})
    assert status == 400
    assert body["content-type"] == "application/problem+json"
    assert "Host" in body["detail"]
    settings.ALLOWED_HOSTS = ["evil.example"]
    async with Stream("/api/v1/events", {**headers, "Host": "evil.example"}) as allowed:
        assert allowed.status == 200


@pytest.mark.parametrize(
    "last_id",
    ["99999999999999999999-0", "0-18446744073709551616", "18446744073709551616-1"],
)
async def test_an_id_beyond_64_bits_gets_a_400(transactional_db, settings, last_id):
    settings.REDIS_URL = ""
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    status, body = await answer("/api/v1/events", {**headers, "Last-Event-ID": last_id})
    assert (status, body["detail"]) == (400, "Last-Event-ID must be an id this stream sent.")


async def test_the_largest_id_is_valid_and_resyncs(transactional_db, settings):
    settings.REDIS_URL = ""
    headers = await sync_to_async(bearer)(await sync_to_async(person)("carol"))
    largest = f"{2**64 - 1}-{2**64 - 1}"
    async with Stream("/api/v1/events", {**headers, "Last-Event-ID": largest}) as stream:
        assert stream.status == 200
        [resync] = await stream.events(1)  # ahead of the feed: the client must re-read
        assert resync["event"] == "resync"
