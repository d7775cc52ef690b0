"""Webhooks deliver at least once whatever the broker loses: the hook makes the deliveries
itself (no Celery message stands between an outbox row and them), and each reconciler pass
sends again a delivery whose `deliver` message was lost or whose worker died mid-attempt,
a bounded number of times. Real receiver; the messages the code sends are kept and run as a
worker runs them (`deliver.apply`), so a message the test does not run is a lost one."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from agents import events, recovery
from agents.models import Job, JobStatus, OutboxEvent, Subtask, SubtaskStatus
from stream import readers
from webhooks import models as webhook_models
from webhooks import recovery as lost_messages
from webhooks import tasks, triggers
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Outcome

from .webhook_receiver import capture_sent_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh(settings):
    """No stream open (its outbox rows would mix with ours); the flusher thread waits."""
    settings.LIVE_WINDOW_S = 60
    if settings.REDIS_URL:
        redis.Redis.from_url(settings.REDIS_URL).delete(readers.READERS_KEY)
    webhook_models.forget_subscriptions()
    readers.forget()
    events.flush_now()
    yield
    webhook_models.forget_subscriptions()
    readers.forget()


@pytest.fixture
def receiver(receiver):
    """The shared receiver, an endpoint for job.completed registered at it."""
    Endpoint.objects.create(url=receiver.url, events=["job.completed"])
    return receiver


def run_deliver_messages(sent_tasks: list[tuple]) -> None:
    """What a worker does with the `deliver` messages sent so far (a retry runs at once)."""
    messages, sent_tasks[:] = list(sent_tasks), []
    for name, args in messages:
        assert name == "webhooks.tasks.deliver"
        tasks.deliver.apply(args=args)


def completed_job() -> Job:
    return Job.objects.create(title="T", description="D", status=JobStatus.COMPLETED, result="r")


def a_delivery() -> Delivery:
    """Made, but its `deliver` message never sent (its on_commit callback never runs)."""
    [pk] = triggers.create_deliveries("job", completed_job().pk, JobStatus.COMPLETED, "k1")
    return Delivery.objects.get(pk=pk)


def age(delivery: Delivery, seconds: float) -> None:
    """As if the delivery was last touched `seconds` ago (update() skips auto_now)."""
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds)
    )


def reconcile_pass(django_capture_on_commit_callbacks) -> dict[str, int]:
    with django_capture_on_commit_callbacks(execute=True):
        return recovery.reconcile()


def test_a_delivery_whose_message_was_never_sent_is_delivered_after_a_pass(
    receiver, sent_tasks, django_capture_on_commit_callbacks
):
    delivery = a_delivery()
    assert reconcile_pass(django_capture_on_commit_callbacks)["deliveries"] == 0  # may be queued
    age(delivery, lost_messages.LOST_AFTER_S + 1)
    assert reconcile_pass(django_capture_on_commit_callbacks)["deliveries"] == 1
    run_deliver_messages(sent_tasks)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    [request] = receiver.received
    assert request.headers["webhook-id"] == delivery.message_id
    assert delivery.messages_lost == 1


def test_an_attempt_whose_worker_died_counts_as_made_and_the_next_is_sent(
    receiver, sent_tasks, django_capture_on_commit_callbacks, settings
):
    delivery = a_delivery()
    assert Delivery.objects.claim(delivery.pk, 1) is not None  # a worker took attempt 1 ...
    age(delivery, settings.WEBHOOK_TIMEOUT_S + 1)  # ... and may still be sending it
    assert reconcile_pass(django_capture_on_commit_callbacks)["deliveries"] == 0
    age(delivery, settings.WEBHOOK_TIMEOUT_S + lost_messages.CLAIM_MARGIN_S + 1)  # ... died
    tasks.deliver.apply(args=(delivery.pk, 1))  # its message, redelivered: refused
    assert receiver.received == []
    assert reconcile_pass(django_capture_on_commit_callbacks)["deliveries"] == 1
    run_deliver_messages(sent_tasks)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    log = list(delivery.attempt_log.values_list("number", "outcome"))
    assert log == [(1, Outcome.FAILED), (2, Outcome.DELIVERED)]
    assert delivery.attempt_log.get(number=1).error.startswith(lost_messages.WORKER_LOST)
    assert len(receiver.received) == 1


def test_a_resend_with_the_original_message_alive_sends_once(receiver, sent_tasks):
    delivery = a_delivery()
    later = timezone.now() + timedelta(minutes=1)
    assert lost_messages.resend_lost(later) == 1
    # The original message turns up after all; then the re-sent one: the claim decides.
    tasks.deliver.apply(args=(delivery.pk, 1))
    run_deliver_messages(sent_tasks)
    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert list(delivery.attempt_log.values_list("number", flat=True)) == [1]


def test_a_delivery_whose_messages_are_always_lost_gives_up(receiver, sent_tasks, settings):
    settings.STEP_MAX_TAKEBACKS = 2
    delivery = a_delivery()
    now = timezone.now()
    for n in range(1, 4):
        # Each lost message is given twice the time of the one before.
        now += timedelta(seconds=lost_messages.LOST_AFTER_S * 2 ** (n - 1) + 1)
        assert lost_messages.resend_lost(now) == 1
        assert lost_messages.resend_lost(now) == 0  # not again before its time
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "Gave up: its message was lost 3 times."
    assert receiver.received == []


def test_a_delivery_whose_worker_always_dies_gives_up(
    sent_tasks, settings, django_capture_on_commit_callbacks
):
    settings.STEP_MAX_TAKEBACKS = 2
    Endpoint.objects.create(url="https://hooks.example.org/", events=["job.completed"])
    delivery = a_delivery()
    later = timezone.now() + timedelta(hours=1)
    for attempt in range(1, 4):
        assert Delivery.objects.claim(delivery.pk, attempt) is not None  # the worker dies
        Delivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            assert lost_messages.resend_lost(later) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "worker lost 3 times" in delivery.last_error
    assert [args for _, args in sent_tasks] == [(delivery.pk, 2), (delivery.pk, 3)]


def test_a_relayed_announcement_makes_its_delivery_without_a_message(sent_tasks):
    Endpoint.objects.create(url="https://hooks.example.org/", events=["job.completed"])
    job = completed_job()
    done = events.Announcement("job.status", job.pk, {"job_id": job.pk, "status": "completed"})
    triggers.on_announcements([done])  # nothing reaches a broker
    triggers.on_announcements([done])  # relayed twice: the same id
    [delivery] = Delivery.objects.filter(job=job)
    assert delivery.message_id == webhook_models.message_id(
        done.id, delivery.endpoint_id, "job.completed"
    )


def test_with_the_broker_unreachable_a_completion_is_still_delivered(
    receiver, monkeypatch, django_capture_on_commit_callbacks
):
    def unreachable(name, args=(), **kw):
        raise ConnectionError("the broker is down")

    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", unreachable)
    job = Job.objects.create(title="T", description="D", status=JobStatus.WORKING)
    sub = Subtask.objects.create(job=job, key="a", type="research", status=SubtaskStatus.WORKING)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            sub.transition(SubtaskStatus.WORKING, SubtaskStatus.COMPLETED, result="done")
            job.transition(JobStatus.WORKING, JobStatus.COMPLETED, result="done")
    assert OutboxEvent.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        events.flush_now()  # the relay: the deliver message cannot be sent
    assert not OutboxEvent.objects.exists()  # deleted: its delivery exists
    [delivery] = Delivery.objects.filter(job=job)
    assert delivery.status == DeliveryStatus.PENDING

    sent_tasks = capture_sent_tasks(monkeypatch)  # the broker is back
    age(delivery, lost_messages.LOST_AFTER_S + 1)
    assert reconcile_pass(django_capture_on_commit_callbacks)["deliveries"] == 1
    run_deliver_messages(sent_tasks)
    [request] = receiver.received
    assert request.headers["webhook-id"] == delivery.message_id
