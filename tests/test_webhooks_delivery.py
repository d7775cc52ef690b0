"""Deliveries to a real HTTP receiver: signed the Standard Webhooks way (checked with the
reference library), retried on 5xx, 429 and silence with backoff, 4xx not, every attempt
logged, and re-sent on request."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from agents import telemetry
from agents.models import Job, JobStatus
from webhooks import tasks, transport, triggers
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Outcome, backoff_s

pytestmark = pytest.mark.django_db


@pytest.fixture
def outcomes(monkeypatch) -> list[str]:
    counted: list[str] = []
    monkeypatch.setattr(telemetry, "webhook_delivered", counted.append)
    return counted


def completed_job(result: str = "A haiku about queues.") -> Job:
    return Job.objects.create(
        title="Write a haiku",
        description="About queues.",
        status=JobStatus.COMPLETED,
        result=result,
    )


def delivery_to(receiver, job: Job | None = None, **endpoint) -> Delivery:
    Endpoint.objects.create(url=receiver.url, events=["job.completed"], **endpoint)
    job = job or completed_job()
    [delivery_id] = triggers.create_deliveries("job", job.pk, JobStatus.COMPLETED, "k1")
    return Delivery.objects.get(pk=delivery_id)


def run_delivery(delivery: Delivery) -> Delivery:
    """As a worker runs it: the task, its retries included (applied at once)."""
    tasks.deliver.apply(args=(delivery.pk, 1))
    delivery.refresh_from_db()
    return delivery


def test_it_delivers_a_message_signed_the_standard_webhooks_way(receiver, outcomes):
    delivery = delivery_to(receiver)
    assert run_delivery(delivery).status == DeliveryStatus.DELIVERED
    [request] = receiver.received
    verified = Webhook(delivery.endpoint.secret).verify(request.body, request.headers)
    assert verified["type"] == "job.completed"
    assert verified["data"]["result"] == "A haiku about queues."
    assert verified["data"]["status"] == "completed"
    assert request.headers["webhook-id"] == delivery.message_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["content-type"] == "application/json"
    assert outcomes == ["delivered"]


def test_a_wrong_secret_does_not_verify(receiver):
    run_delivery(delivery_to(receiver))
    [request] = receiver.received
    with pytest.raises(Exception, match="signature"):
        Webhook(transport.new_secret()).verify(request.body, request.headers)


def test_the_signature_is_the_reference_librarys():
    secret = transport.new_secret()
    body = json.dumps({"type": "job.completed", "data": {"job_id": 1}})
    reference = Webhook(secret).sign("msg_1", _utc(1_700_000_000), body)
    assert transport.sign(secret, "msg_1", 1_700_000_000, body) == reference


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_a_500_is_tried_again_until_it_is_delivered(receiver, outcomes):
    receiver.answer(500, 200)
    delivery = run_delivery(delivery_to(receiver))
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 2
    log = list(delivery.attempt_log.values_list("number", "outcome", "status_code"))
    assert log == [(1, Outcome.FAILED, 500), (2, Outcome.DELIVERED, 200)]
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # one message
    assert outcomes == ["failed", "delivered"]


def test_429_and_silence_are_tried_again_too(receiver, settings):
    settings.WEBHOOK_TIMEOUT_S = 0.3
    receiver.script = [(429, "slow down", 0.0), (200, "late", 1.0), (204, "", 0.0)]
    delivery = run_delivery(delivery_to(receiver))
    log = list(delivery.attempt_log.values_list("outcome", "status_code"))
    assert log == [(Outcome.FAILED, 429), (Outcome.FAILED, None), (Outcome.DELIVERED, 204)]
    assert "No answer within 0.3 s" in delivery.attempt_log.get(number=2).error


def test_a_4xx_is_not_tried_again(receiver, outcomes):
    receiver.answer(410, 200)
    delivery = run_delivery(delivery_to(receiver))
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 1 and len(receiver.received) == 1
    assert delivery.attempt_log.get().outcome == Outcome.REJECTED
    assert outcomes == ["rejected"]


def test_it_gives_up_after_the_last_attempt(receiver, settings, outcomes):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.answer(503)
    delivery = run_delivery(delivery_to(receiver))
    assert delivery.status == DeliveryStatus.FAILED
    assert len(receiver.received) == 3
    assert outcomes == ["failed", "failed", "gave_up"]
    assert delivery.last_status_code == 503


def test_each_attempt_logs_status_latency_and_at_most_1_kb_of_the_answer(receiver):
    receiver.answer(500, 200, body="é" * 3000)
    delivery = run_delivery(delivery_to(receiver))
    for attempt in delivery.attempt_log.all():
        assert attempt.latency_s is not None and attempt.latency_s < 2
        assert 500 <= len(attempt.response_excerpt.encode()) <= 1024 + 3
        assert attempt.response_excerpt.startswith("éé")


def test_the_backoff_doubles_with_jitter(settings, receiver):
    settings.WEBHOOK_RETRY_BASE_S = 1.0
    for attempt, (low, high) in enumerate([(2, 3), (4, 5), (8, 9), (16, 17)], start=1):
        assert all(low <= backoff_s(attempt) < high for _ in range(20))
    receiver.answer(502)
    delivery = delivery_to(receiver)
    claimed = Delivery.objects.claim(delivery.pk, 1)
    assert 2 <= claimed.attempt() < 3  # what the task hands Celery as the countdown
    claimed.refresh_from_db()
    assert claimed.status == DeliveryStatus.PENDING and claimed.next_attempt_at is not None


def test_a_duplicated_message_sends_nothing_twice(receiver):
    delivery = delivery_to(receiver)
    assert Delivery.objects.claim(delivery.pk, 1) is not None
    assert Delivery.objects.claim(delivery.pk, 1) is None  # the same message again
    tasks.deliver.apply(args=(delivery.pk, 1))
    assert receiver.received == []


def test_a_failed_delivery_is_sent_again_with_fresh_attempts(receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.answer(500)
    delivery = run_delivery(delivery_to(receiver))
    assert delivery.status == DeliveryStatus.FAILED
    receiver.answer(500, 500, 200)  # from the 3rd request on, it answers
    assert delivery.resend()
    assert not delivery.resend()  # pending again: not twice
    tasks.deliver.apply(args=(delivery.pk, 3))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert list(delivery.attempt_log.values_list("number", flat=True)) == [1, 2, 3]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_a_disabled_endpoint_gets_nothing(receiver):
    delivery = delivery_to(receiver)
    Endpoint.objects.update(enabled=False)
    assert run_delivery(delivery).status == DeliveryStatus.REFUSED
    assert receiver.received == []


def test_the_payload_carries_the_job_and_a_truncated_result(receiver, settings):
    settings.PUBLIC_URL = "https://baton.example.org"
    job = completed_job(result="x" * (triggers.RESULT_CHARS + 10))
    payload = json.loads(delivery_to(receiver, job).body)
    assert payload["type"] == "job.completed"
    assert payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert data["job_id"] == job.pk and data["title"] == "Write a haiku"
    assert len(data["result"]) == triggers.RESULT_CHARS and data["result_truncated"]
    assert data["url"] == f"https://baton.example.org/jobs/{job.pk}/"
    assert data["error"] == ""


def test_a_delivery_whose_worker_died_can_be_sent_again(receiver):
    delivery = delivery_to(receiver)
    assert Delivery.objects.claim(delivery.pk, 1)  # ... and the worker was killed here
    assert not delivery.resend()  # it may still be sending
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=an_hour_ago)
    delivery.refresh_from_db()
    assert delivery.stuck and delivery.resend()
    tasks.deliver.apply(args=(delivery.pk, 2))
    tasks.deliver.apply(args=(delivery.pk, 2))  # the lost message, turning up after all
    assert run_delivery(delivery).status == DeliveryStatus.DELIVERED
    assert len(receiver.received) == 1
