"""Webhook endpoints, the deliveries made to them, and every attempt of each.

A delivery is one signed message (its body fixed when it is created) to one endpoint; it is
tried up to WEBHOOK_MAX_ATTEMPTS times with exponential backoff, each attempt claimed by a
conditional UPDATE so a duplicated Celery message never sends it twice, and logged.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from agents import telemetry
from agents.text import clean, described

from . import transport

# A 429's Retry-After is honoured up to this long.
RETRY_AFTER_MAX_S = 300.0
# The error of an attempt that raised before its outcome was recorded starts with this.
CRASHED = "The attempt raised"
# A pending delivery this long past its due time is stuck: it may be re-sent.
STUCK_AFTER_S = 60.0
# How long a process trusts what it read of the endpoints' subscriptions.
SUBSCRIPTIONS_TTL_S = 5.0
_subscriptions: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


class EventType(models.TextChoices):
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"  # for any reason, a spent budget included
    JOB_CANCELLED = "job.cancelled"
    JOB_AWAITING_REVIEW = "job.awaiting_review"
    SUBTASK_FAILED = "subtask.failed"  # for good: no retries left
    BUDGET_EXCEEDED = "budget.exceeded"  # a job failed because its budget is spent
    # An agent's recent quality in a specialty fell below QUALITY_ALERT_BELOW (agents.quality).
    AGENT_QUALITY_DROPPED = "agent.quality_dropped"


def validate_events(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("Choose at least one event.")
    unknown = sorted(set(map(str, value)) - set(EventType.values))
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(unknown)}.")


def validate_target(url: str) -> None:
    """Refused targets are refused when registered (and again at each delivery)."""
    try:
        transport.resolve(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except (transport.Refused, transport.Unreachable) as exc:
        raise ValidationError(str(exc)) from None


class EndpointQuerySet(models.QuerySet):
    def subscribed_events(self) -> frozenset[str]:
        """The events some enabled endpoint wants, read again every SUBSCRIPTIONS_TTL_S:
        status moves ask the database nothing in between."""
        global _subscriptions
        read_at, events = _subscriptions
        if time.monotonic() - read_at > SUBSCRIPTIONS_TTL_S:
            chosen = Endpoint.objects.filter(enabled=True).values_list("events", flat=True)
            events = frozenset(event for some in chosen for event in some)
            _subscriptions = (time.monotonic(), events)
        return events


def forget_subscriptions() -> None:
    """An endpoint changed in this process: read them again at the next move."""
    global _subscriptions
    _subscriptions = (float("-inf"), frozenset())


class Endpoint(models.Model):
    url = models.URLField(
        "URL",
        max_length=500,
        validators=[validate_target],
        help_text="Baton POSTs signed JSON here; private addresses are refused.",
    )
    description = models.CharField(max_length=200, blank=True)
    # Used to sign, so kept as is (not hashed); never shown after it is created.
    secret = models.CharField(max_length=100, editable=False)
    events = models.JSONField(default=list, validators=[validate_events])
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url

    def save(self, *args, **kwargs) -> None:
        if not self.secret:
            self.secret = transport.new_secret()
        super().save(*args, **kwargs)
        transaction.on_commit(forget_subscriptions)

    def get_absolute_url(self) -> str:
        return reverse("webhooks-endpoint", args=[self.pk])

    def delete(self, *args, **kwargs):
        transaction.on_commit(forget_subscriptions)
        return super().delete(*args, **kwargs)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused"


class Outcome(models.TextChoices):
    """One attempt's outcome; also the `outcome` label of baton_webhook_deliveries_total."""

    DELIVERED = "delivered"  # a 2xx
    FAILED = "failed"  # no answer, 5xx or 429: tried again
    GAVE_UP = "gave_up"  # failed, and no attempts left
    REJECTED = "rejected"  # another 4xx (or a redirect): not tried again
    REFUSED = "refused"  # a private target, or the endpoint is disabled


def message_id(key: str, endpoint_id: int, event: str) -> str:
    """The same announcement, endpoint and event always make the same id: a duplicated
    message cannot create a second delivery."""
    return "msg_" + hashlib.sha256(f"{key}:{endpoint_id}:{event}".encode()).hexdigest()[:32]


def send_on_commit(delivery_id: int, attempt: int, countdown: float | None = None) -> None:
    """Queue attempt `attempt` of a delivery once the transaction commits (by task name).

    Robust: a broker that cannot take the message only logs it; the delivery stays pending
    and a reconciler pass re-sends it (webhooks.recovery)."""
    args = (delivery_id, attempt)
    transaction.on_commit(
        lambda: current_app.send_task("webhooks.tasks.deliver", args=args, countdown=countdown),
        robust=True,
    )


def backoff_s(attempt: int) -> float:
    """Before attempt `attempt` + 1: base × 2^n plus up to base of jitter (2, 4, 8, 16 s)."""
    base = settings.WEBHOOK_RETRY_BASE_S
    return base * (2**attempt + random.random())


class DeliveryQuerySet(models.QuerySet):
    def claim(self, delivery_id: int, attempt: int) -> Delivery | None:
        """Take attempt `attempt` of a pending delivery, or None: a duplicated message, or
        one that another attempt (or a re-send) overtook, finds nothing to do."""
        taken = self.filter(
            pk=delivery_id, status=DeliveryStatus.PENDING, attempts=attempt - 1
        ).update(attempts=attempt, next_attempt_at=None, updated_at=timezone.now())
        return self.select_related("endpoint").get(pk=delivery_id) if taken else None


class Delivery(models.Model):
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=EventType.choices)
    # `webhook-id`: the same for every attempt and re-send, so receivers can drop repeats.
    message_id = models.CharField(max_length=40, unique=True)
    body = models.TextField(help_text="Exactly what is signed and sent.")
    job = models.ForeignKey(
        "agents.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # Attempts made before the latest re-send: each (re-)send has WEBHOOK_MAX_ATTEMPTS.
    round_start = models.PositiveSmallIntegerField(default=0)
    # Messages of this round a reconciler pass presumed lost and sent again (webhooks.recovery).
    messages_lost = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint"),
            # Each reconciler pass looks for pending deliveries whose message was lost.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"

    @property
    def stuck(self) -> bool:
        """Pending, but nothing will move it any more: the worker of its attempt died before
        the outcome, or the message of its next attempt was lost (a Redis restart)."""
        if self.status != DeliveryStatus.PENDING:
            return False
        due = self.next_attempt_at or (
            self.updated_at + timedelta(seconds=settings.WEBHOOK_TIMEOUT_S)
        )
        return timezone.now() > due + timedelta(seconds=STUCK_AFTER_S)

    @property
    def can_resend(self) -> bool:
        return self.status != DeliveryStatus.PENDING or self.stuck

    def attempt(self) -> float | None:
        """Make the claimed attempt and log it; seconds before the next one, or None."""
        timestamp = int(time.time())
        headers = {
            "webhook-id": self.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": transport.sign(
                self.endpoint.secret, self.message_id, timestamp, self.body
            ),
        }
        log = Attempt(delivery=self, number=self.attempts)
        retry_after = None
        if not self.endpoint.enabled:
            log.outcome, log.error = Outcome.REFUSED, "The endpoint is disabled."
        else:
            try:
                reply = transport.post(
                    self.endpoint.url,
                    self.body,
                    headers,
                    allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
                    timeout=settings.WEBHOOK_TIMEOUT_S,
                )
            except transport.Refused as exc:
                log.outcome, log.error = Outcome.REFUSED, str(exc)
            except transport.Unreachable as exc:
                log.outcome, log.error = Outcome.FAILED, str(exc)
            else:
                log.status_code, log.latency_s = reply.status, reply.latency_s
                log.response_excerpt, retry_after = reply.excerpt, reply.retry_after
                if 200 <= reply.status < 300:
                    log.outcome = Outcome.DELIVERED
                elif reply.status == 429 or reply.status >= 500:
                    log.outcome = Outcome.FAILED
                else:
                    log.outcome = Outcome.REJECTED
                    log.error = f"HTTP {reply.status}: not tried again."
        made = self.attempts - self.round_start
        if log.outcome == Outcome.FAILED and made >= settings.WEBHOOK_MAX_ATTEMPTS:
            log.outcome = Outcome.GAVE_UP
        delay = None
        if log.outcome == Outcome.FAILED:
            delay = max(backoff_s(made), min(retry_after or 0.0, RETRY_AFTER_MAX_S))
        self._record(log, delay)
        telemetry.webhook_delivered(log.outcome)
        return delay

    def crashed(self, exc: Exception) -> float | None:
        """The claimed attempt raised before its outcome was recorded: log it as failed, and
        give up once this (re-)send has crashed STEP_MAX_TAKEBACKS times over; seconds
        before the next attempt, or None."""
        cause = described(exc)
        crashes = self.attempt_log.filter(
            number__gt=self.round_start, error__startswith=CRASHED
        ).count()
        log = Attempt(delivery=self, number=self.attempts, error=f"{CRASHED} {cause}")
        made = self.attempts - self.round_start
        if crashes >= settings.STEP_MAX_TAKEBACKS or made >= settings.WEBHOOK_MAX_ATTEMPTS:
            log.outcome, delay = Outcome.GAVE_UP, None
            log.error += f" (gave up after {crashes + 1} such attempts)"
        else:
            log.outcome, delay = Outcome.FAILED, backoff_s(made)
        self._record(log, delay)
        telemetry.webhook_delivered(log.outcome)
        return delay

    def _record(self, log: Attempt, delay: float | None) -> None:
        now = timezone.now()
        # An endpoint's answer may hold what no database stores (NUL).
        log.response_excerpt, log.error = clean(log.response_excerpt), clean(log.error)
        status = {
            Outcome.DELIVERED: DeliveryStatus.DELIVERED,
            Outcome.FAILED: DeliveryStatus.PENDING,
            Outcome.REFUSED: DeliveryStatus.REFUSED,
        }.get(log.outcome, DeliveryStatus.FAILED)
        with transaction.atomic():
            taken = Delivery.objects.filter(
                pk=self.pk, attempts=self.attempts, status=DeliveryStatus.PENDING
            )
            if not taken.exists():
                return  # this attempt's outcome is recorded already (it crashed after)
            log.save()
            taken.update(
                status=status,
                last_status_code=log.status_code,
                last_error=log.error,
                next_attempt_at=now + timedelta(seconds=delay) if delay else None,
                finished_at=None if status == DeliveryStatus.PENDING else now,
                updated_at=now,
            )
        self.status = status

    def resend(self) -> bool:
        """Send again, with a fresh set of attempts; False while it is still being sent.

        A stuck delivery's lost message, should it turn up after all, claims the same attempt
        number as the re-send's: only one of them sends."""
        with transaction.atomic():
            rows = Delivery.objects.select_for_update().filter(pk=self.pk)
            current = rows.first()
            if current is None or not current.can_resend:
                return False
            rows.update(
                status=DeliveryStatus.PENDING,
                round_start=current.attempts,
                messages_lost=0,
                next_attempt_at=None,
                finished_at=None,
                updated_at=timezone.now(),
            )
            send_on_commit(self.pk, current.attempts + 1)
        self.status = DeliveryStatus.PENDING
        return True


class Attempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, help_text="At most the first 1 KB.")
    error = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.outcome}"
