"""The outbox: announcements that must survive the process that committed them.

agents.events writes an announcement here, inside the moving transaction, when a hook says
someone consumes it (a webhook endpoint subscribed to what it can mean, an open event
stream); with nobody subscribed nothing is written and the step pays nothing. After commit
the flusher hands the announcement to the hooks as before and then deletes its row. A row
whose process died before that is relayed by any worker's reconciler pass once it is
OUTBOX_GRACE_S old (`relay_stale`). Relaying is at least once: an event relayed twice keeps
its id (`Announcement.id`), from which webhooks derive their message ids and which the feed
sends as `event_id`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import events
from .models import OutboxEvent

log = logging.getLogger(__name__)
RELAY_BATCH = 500


def write(announcement: events.Announcement) -> int:
    """Keep `announcement` with the current transaction's writes; its row's id."""
    row = OutboxEvent.objects.create(
        event_id=announcement.id,
        event=announcement.event,
        job_id=announcement.job_id,
        data=announcement.data,
        created_at=timezone.now(),
    )
    return row.pk


def forget(row_ids: list[int]) -> None:
    """Relayed: one DELETE for a window's rows."""
    OutboxEvent.objects.filter(pk__in=row_ids).delete()


def relay_stale(grace_s: float | None = None) -> int:
    """Relay rows older than the grace (their process died before relaying them); how many.

    Rows are claimed with SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL, so two reconcilers
    relay different rows; SQLite has no row locks (Django drops the clause) and one writer at
    a time. A row is deleted only when every hook took it: else the next pass tries again.
    """
    grace = settings.OUTBOX_GRACE_S if grace_s is None else grace_s
    cutoff = timezone.now() - timedelta(seconds=grace)
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(created_at__lte=cutoff)
            .order_by("pk")[:RELAY_BATCH]
        )
        if not rows:
            return 0
        announcements = [
            events.Announcement(row.event, row.job_id, row.data, id=row.event_id) for row in rows
        ]
        if not events.run_hooks(announcements):
            return 0
        forget([row.pk for row in rows])
    log.warning("relayed %d events their process left behind", len(rows))
    return len(rows)
