"""Idempotency keys: a client's `Idempotency-Key` makes a retried submission return the job
the first one made instead of a second job (and a second bill).

The key's row is inserted before the job, in the job's transaction: the unique constraint on
(user, key) decides which of concurrent requests creates it. On PostgreSQL a second INSERT
of the same key waits for the first transaction, then fails if it committed (and succeeds if
it rolled back), so twenty requests at once make one job and nineteen replays."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import IdempotencyKey, Job

# A key whose row vanishes between our failed insert and our read (its job was deleted, or
# it expired and was purged) is tried again, a bounded number of times.
ATTEMPTS = 3


class KeyReused(ValueError):
    """The key was used for another request (another body, or another endpoint)."""


def fingerprint(method: str, path: str, body: object) -> str:
    """sha256 of the request: its method, its path and its parsed body as canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


def _cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_S)


def submit_once(user, key: str, fingerprint: str, create: Callable[[], Job]) -> tuple[Job, bool]:
    """The job `create()` makes, once per (user, key): (job, False) the first time, then
    (that job, True) for the same request within IDEMPOTENCY_KEY_TTL_S.

    Raises KeyReused when the key came with another request. What `create` raises (a
    submission limit) rolls the key back with the job, so the request may be sent again."""
    for _ in range(ATTEMPTS):
        with transaction.atomic():
            # An expired key counts as absent: a request after the TTL makes a new job.
            IdempotencyKey.objects.filter(user=user, key=key, created_at__lt=_cutoff()).delete()
            try:
                with transaction.atomic():
                    row = IdempotencyKey.objects.create(user=user, key=key, fingerprint=fingerprint)
            except IntegrityError:
                row = None  # another request committed this key first
            if row is not None:
                job = create()
                row.job = job
                row.save(update_fields=["job"])
                return job, False
        existing = (
            IdempotencyKey.objects.filter(user=user, key=key, created_at__gte=_cutoff())
            .select_related("job")
            .first()
        )
        if existing is None or existing.job is None:
            continue  # gone since (expired, purged, its job deleted): insert again
        if existing.fingerprint != fingerprint:
            raise KeyReused(
                f"The Idempotency-Key “{key}” was already used for another request (another "
                "body or another endpoint). Use a new key for a new request."
            )
        return existing.job, True
    raise IntegrityError(f"The Idempotency-Key “{key}” kept changing hands; try again.")


def purge_expired(now: datetime | None = None) -> int:
    """Forget keys older than IDEMPOTENCY_KEY_TTL_S; how many (a recovery pass's hook)."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=_cutoff(now)).delete()
    return deleted
