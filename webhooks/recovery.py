"""Deliveries whose `deliver` message is presumed lost, sent again by each reconciler pass.

A message can vanish: a flushed Redis loses the queue, and one held by a SIGKILLed worker
returns (acks_late on Redis) only after the broker's visibility timeout. Nothing else would
move its delivery again, so agents.recovery calls `resend_lost` at the end of every pass
(registered by apps.py). A pending delivery is presumed lost when

- it is due (its next attempt's time, or its creation or re-send while unclaimed) longer ago
  than LOST_AFTER_S, doubled for each of its messages already presumed lost: a message
  waiting behind a long queue is given ever more time before its delivery gives up;
- or its attempt was claimed longer ago than WEBHOOK_TIMEOUT_S + CLAIM_MARGIN_S (the transport
  gives up within the timeout): the worker died before recording the outcome. That attempt
  counts as made, logged as WORKER_LOST.

A re-send is safe with the original message still alive: both claim the same attempt
number with a conditional UPDATE (`Delivery.objects.claim`), and only one sends. Each
delivery is re-sent at most STEP_MAX_TAKEBACKS times for either cause; the next one gives up
and names the cause.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents import telemetry

from .models import Attempt, Delivery, DeliveryStatus, Outcome, backoff_s, send_on_commit

log = logging.getLogger(__name__)

LOST_AFTER_S = 5.0
CLAIM_MARGIN_S = 10.0
WORKER_LOST = "Worker lost"
BATCH = 200


def presumed_lost(now: datetime) -> Q:
    claimed = Q(next_attempt_at__isnull=True, attempts__gt=F("round_start"))
    dead = claimed & Q(
        updated_at__lt=now - timedelta(seconds=settings.WEBHOOK_TIMEOUT_S + CLAIM_MARGIN_S)
    )
    for lost in range(settings.STEP_MAX_TAKEBACKS + 1):
        before = now - timedelta(seconds=LOST_AFTER_S * 2**lost)
        unclaimed = Q(
            next_attempt_at__isnull=True, attempts=F("round_start"), updated_at__lt=before
        )
        dead |= Q(messages_lost=lost) & (Q(next_attempt_at__lt=before) | unclaimed)
    # Beyond the bound (a setting lowered since): due at once, to give up.
    return Q(status=DeliveryStatus.PENDING) & (
        dead | Q(messages_lost__gt=settings.STEP_MAX_TAKEBACKS)
    )


def resend_lost(now: datetime | None = None) -> int:
    """Send again each delivery presumed lost (or give it up); how many were acted on."""
    now = now or timezone.now()
    acted = 0
    with transaction.atomic():
        # SKIP LOCKED: two reconcilers at once take different rows (PostgreSQL).
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(presumed_lost(now))
            .order_by("pk")[:BATCH]
        )
        for delivery in rows:
            acted += _resend(delivery, now)
    if acted:
        log.warning("re-sent %d webhook deliveries whose message was lost", acted)
    return acted


def _take(delivery: Delivery, now: datetime, **changes) -> bool:
    """Whether this pass takes the delivery as it was read (SQLite has no row locks: another
    reconciler, or the attempt itself, may have moved it since)."""
    return bool(
        Delivery.objects.filter(
            pk=delivery.pk,
            status=DeliveryStatus.PENDING,
            attempts=delivery.attempts,
            updated_at=delivery.updated_at,
        ).update(updated_at=now, **changes)
    )


def _resend(delivery: Delivery, now: datetime) -> int:
    if delivery.next_attempt_at is None and delivery.attempts > delivery.round_start:
        return _worker_lost(delivery, now)
    lost = delivery.messages_lost + 1
    if lost > settings.STEP_MAX_TAKEBACKS:
        error = f"Gave up: its message was lost {lost} times."
        if _take(delivery, now, status=DeliveryStatus.FAILED, last_error=error, finished_at=now):
            telemetry.webhook_delivered(Outcome.GAVE_UP)
            return 1
        return 0
    if not _take(delivery, now, messages_lost=lost, next_attempt_at=now):
        return 0
    send_on_commit(delivery.pk, delivery.attempts + 1)
    return 1


def _worker_lost(delivery: Delivery, now: datetime) -> int:
    """The claimed attempt's worker died: the attempt counts as made and failed."""
    if not _take(delivery, now):
        return 0
    delivery.updated_at = now
    lost = delivery.attempt_log.filter(
        number__gt=delivery.round_start, error__startswith=WORKER_LOST
    ).count()
    log_row = Attempt(
        delivery=delivery,
        number=delivery.attempts,
        error=f"{WORKER_LOST}: it stopped before the outcome was recorded.",
    )
    made = delivery.attempts - delivery.round_start
    if lost >= settings.STEP_MAX_TAKEBACKS or made >= settings.WEBHOOK_MAX_ATTEMPTS:
        log_row.outcome, delay = Outcome.GAVE_UP, None
        log_row.error += f" Gave up: worker lost {lost + 1} times."
    else:
        log_row.outcome, delay = Outcome.FAILED, backoff_s(made)
    delivery._record(log_row, delay)
    telemetry.webhook_delivered(log_row.outcome)
    if delay is not None:
        send_on_commit(delivery.pk, delivery.attempts + 1, countdown=delay)
    return 1
