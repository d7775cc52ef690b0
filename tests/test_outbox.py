"""The outbox: an announcement someone consumes is written in the transaction of the move
that made it, relayed after commit and deleted; one its process left behind is relayed by a
reconciler pass, under the same id, so a relayed-twice event makes one webhook delivery. With
nobody subscribed a step writes nothing more."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import timedelta

import pytest
import redis
import redis.asyncio
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import events, outbox, recovery
from agents.models import Job, JobStatus, OutboxEvent, Subtask, SubtaskStatus
from stream import feed, readers
from webhooks import models as webhook_models
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def nobody_subscribed(settings):
    """No endpoint read yet, no stream open; the flusher thread waits: tests flush."""
    settings.LIVE_WINDOW_S = 60
    if settings.REDIS_URL:
        redis.Redis.from_url(settings.REDIS_URL).delete(readers.READERS_KEY, feed.STREAM_KEY)
    webhook_models.forget_subscriptions()
    readers.forget()
    events.flush_now()  # nothing left over from an earlier test
    yield
    webhook_models.forget_subscriptions()
    readers.forget()


def feed_data(settings) -> list[tuple[str, dict]]:
    """What the feed holds, oldest first: (event, data)."""
    if settings.REDIS_URL:
        rows = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True).xrange(
            feed.STREAM_KEY
        )
        return [(fields["event"], json.loads(fields["data"])) for _, fields in rows]
    return [(e.event, json.loads(e.data)) for e in feed.local.entries]


def open_stream(settings) -> None:
    """What a web process following the feed for an open stream does (stream.fanout)."""

    async def renew() -> None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        await readers.renew(client)
        await client.aclose()

    asyncio.run(renew())
    readers.forget()  # this process asks Redis again at its next move


def working_job() -> tuple[Job, Subtask]:
    job = Job.objects.create(title="T", description="D", status=JobStatus.WORKING)
    sub = Subtask.objects.create(job=job, key="a", type="research", status=SubtaskStatus.WORKING)
    return job, sub


def complete(job: Job, sub: Subtask) -> None:
    with transaction.atomic():
        sub.transition(SubtaskStatus.WORKING, SubtaskStatus.COMPLETED, result="done")
        job.transition(JobStatus.WORKING, JobStatus.COMPLETED, result="done")


def test_with_nobody_subscribed_a_completion_costs_no_statement_more(monkeypatch):
    Endpoint.objects.subscribed_events()  # read once per few seconds per process: not per step
    readers.present()
    with CaptureQueriesContext(connection) as kept:
        complete(*working_job())
    monkeypatch.setattr(events, "_durable", [])  # as before the outbox
    with CaptureQueriesContext(connection) as before:
        complete(*working_job())
    assert len(kept.captured_queries) == len(before.captured_queries)
    assert not any("outbox" in q["sql"] for q in kept.captured_queries)
    assert not OutboxEvent.objects.exists()


def test_a_move_a_webhook_wants_is_kept_in_its_transaction_until_relayed(
    sent_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        Endpoint.objects.create(url="https://hooks.example.org/", events=["job.completed"])
    job, sub = working_job()
    with pytest.raises(RuntimeError), transaction.atomic():  # rolled back: nothing kept
        job.transition(JobStatus.WORKING, JobStatus.COMPLETED)
        assert OutboxEvent.objects.count() == 1
        raise RuntimeError
    assert not OutboxEvent.objects.exists()

    job.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        complete(job, sub)
    # Only the job's move is one an endpoint wants; the subtask's is not kept.
    [row] = OutboxEvent.objects.all()
    assert (row.event, row.job_id, row.data["status"]) == ("job.status", job.pk, "completed")
    events.flush_now()
    assert not OutboxEvent.objects.exists()
    [delivery] = Delivery.objects.filter(job=job)  # made before the row was deleted
    assert delivery.message_id == webhook_models.message_id(
        row.event_id, delivery.endpoint_id, "job.completed"
    )


def test_an_event_relayed_twice_makes_one_delivery(settings, sent_tasks):
    Endpoint.objects.create(url="https://hooks.example.org/", events=["job.completed"])
    job = Job.objects.create(title="T", description="D", status=JobStatus.COMPLETED)
    data = {"job_id": job.pk, "status": "completed"}
    left = OutboxEvent.objects.create(
        event_id=uuid.uuid4().hex,
        event="job.status",
        job_id=job.pk,
        data=data,
        created_at=timezone.now(),
    )
    assert recovery.relay_stale() == 0  # within the grace its process may still relay it
    OutboxEvent.objects.filter(pk=left.pk).update(created_at=timezone.now() - timedelta(seconds=3))
    assert recovery.relay_stale() == 1
    assert not OutboxEvent.objects.filter(pk=left.pk).exists()
    # Its process relayed it too after all (it was only slow): the same id again.
    events.run_hooks([events.Announcement("job.status", job.pk, data, id=left.event_id)])
    assert Delivery.objects.filter(job=job).count() == 1
    served = [d for _, d in feed_data(settings) if d.get("event_id") == left.event_id]
    assert served == [{**data, "event_id": left.event_id}] * 2  # subscribers de-duplicate


def test_a_row_whose_relay_failed_is_kept_for_the_next_pass(settings, sent_tasks):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens: the feed cannot take it
    stale = timezone.now() - timedelta(seconds=10)
    OutboxEvent.objects.create(
        event_id="f" * 32, event="state.version", job_id=1, data={"job_id": 1}, created_at=stale
    )
    assert outbox.relay_stale() == 0
    assert OutboxEvent.objects.count() == 1


@pytest.mark.skipif("not __import__('os').environ.get('REDIS_URL')", reason="needs Redis")
def test_with_a_stream_open_every_announcement_is_kept_and_carries_its_id(
    settings, django_capture_on_commit_callbacks
):
    job, sub = working_job()
    open_stream(settings)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            sub.transition(SubtaskStatus.WORKING, SubtaskStatus.COMPLETED)
        rows = list(OutboxEvent.objects.values_list("event", "event_id"))
    assert [event for event, _ in rows] == ["subtask.status"]
    events.flush_now()
    assert not OutboxEvent.objects.exists()
    served = [(e, d) for e, d in feed_data(settings) if d.get("subtask_id") == sub.pk]
    assert served == [
        (
            "subtask.status",
            {"job_id": job.pk, "subtask_id": sub.pk, "status": "completed", "event_id": rows[0][1]},
        )
    ]


@pytest.mark.django_db(transaction=True)
def test_two_reconcilers_relay_different_rows():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite has one writer at a time)")
    stale = timezone.now() - timedelta(seconds=10)
    taken, free = (
        OutboxEvent.objects.create(
            event_id=uuid.uuid4().hex,
            event="state.version",
            job_id=1,
            data={"job_id": 1, "version": n},
            created_at=stale,
        )
        for n in (1, 2)
    )
    locked, release = threading.Event(), threading.Event()

    def another_reconciler() -> None:
        with transaction.atomic():
            list(OutboxEvent.objects.select_for_update().filter(pk=taken.pk))
            locked.set()
            release.wait(10)
        connection.close()

    other = threading.Thread(target=another_reconciler)
    other.start()
    try:
        assert locked.wait(10)
        assert outbox.relay_stale() == 1  # the other's row is skipped, not waited for
        assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [taken.pk]
    finally:
        release.set()
        other.join()
