"""An open event stream is checked again at each keep-alive: it ends, and delivers nothing
more, once its token is revoked, its session logged out or its user has no role left."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from agents.models import ApiToken, Job, JobStatus

from .cast import person
from .sse_client import Stream, move, settle

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("close_thread_connections")]
KEEPALIVE_S = 0.2


@pytest.fixture
def quick(settings):
    settings.REDIS_URL = ""
    settings.SSE_KEEPALIVE_S = KEEPALIVE_S


async def rest_of(stream: Stream) -> str:
    """Everything the stream sends until it ends its response (a stream that goes on
    fails the test by timing out)."""
    text = ""

    async def until_the_end() -> None:
        nonlocal text
        while True:
            message = await stream.sent.get()
            text += message.get("body", b"").decode()
            if not message.get("more_body"):
                return

    await asyncio.wait_for(until_the_end(), 10)
    return stream.buffer + text


async def lose_access_then_move_a_job(stream: Stream, lose) -> str:
    job = await Job.objects.acreate(title="Watched", description="D")
    await settle()
    [created] = await stream.events(1)
    assert (created["data"]["job_id"], created["data"]["status"]) == (job.pk, "queued")
    await sync_to_async(lose)()
    await asyncio.sleep(KEEPALIVE_S * 3)  # a keep-alive's check passes meanwhile
    await sync_to_async(move)(job, JobStatus.PLANNING)
    await settle()
    return await rest_of(stream)


def bearer_of(user) -> tuple[ApiToken, dict[str, str]]:
    token, secret = ApiToken.objects.issue(user, "sse")
    return token, {"Authorization": f"Bearer {secret}"}


async def test_a_revoked_token_ends_the_stream(transactional_db, quick):
    carol = await sync_to_async(person)("carol")
    token, headers = await sync_to_async(bearer_of)(carol)
    async with Stream("/api/v1/events", headers) as stream:
        rest = await lose_access_then_move_a_job(stream, token.revoke)
    assert "event:" not in rest


async def test_a_user_without_roles_any_more_loses_the_stream(transactional_db, quick):
    carol = await sync_to_async(person)("carol")
    _, headers = await sync_to_async(bearer_of)(carol)
    async with Stream("/api/v1/events", headers) as stream:
        rest = await lose_access_then_move_a_job(stream, carol.groups.clear)
    assert "event:" not in rest


async def test_a_session_logged_out_ends_the_stream(transactional_db, quick):
    bob = await sync_to_async(person)("bob")
    client = Client()
    await sync_to_async(client.force_login)(bob)
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    async with Stream("/api/v1/events", cookie) as stream:
        rest = await lose_access_then_move_a_job(stream, client.logout)
    assert "event:" not in rest


async def test_a_stream_whose_holder_keeps_access_goes_on(transactional_db, quick):
    carol = await sync_to_async(person)("carol")
    _, headers = await sync_to_async(bearer_of)(carol)
    async with Stream("/api/v1/events", headers) as stream:
        job = await Job.objects.acreate(title="Watched", description="D")
        await settle()
        await asyncio.sleep(KEEPALIVE_S * 3)
        await sync_to_async(move)(job, JobStatus.PLANNING)
        seen = await stream.events(2)
    assert [e["data"]["status"] for e in seen] == ["queued", "planning"]
