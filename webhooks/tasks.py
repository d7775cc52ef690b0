"""Celery tasks: ids in. `deliver` makes one attempt and, when it failed in a way worth
another, schedules the next (Celery's retry with a countdown: 2, 4, 8, 16 s plus jitter by
default). A message that is lost on the way is re-sent by a reconciler pass (recovery.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from . import triggers
from .models import Delivery

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def announce(kind: str, object_id: int, status: str, key: str) -> None:
    """Messages queued before the hook made deliveries itself (triggers.on_announcements)."""
    triggers.create_deliveries(kind, object_id, status, key)


@shared_task(bind=True, ignore_result=True)
def deliver(self, delivery_id: int, attempt: int) -> None:
    delivery = Delivery.objects.claim(delivery_id, attempt)
    if delivery is None:  # a duplicated message, or a re-send overtook it: nothing to do
        return
    try:
        delay = delivery.attempt()
    except Exception as exc:
        # Logged and counted: a delivery whose attempts always raise ends (gave_up).
        log.exception("attempt %s of delivery %s raised", attempt, delivery_id)
        delay = delivery.crashed(exc)
    if delay is not None:
        raise self.retry(args=(delivery_id, attempt + 1), countdown=delay, max_retries=None)
