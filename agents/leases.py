"""Leases: which process runs a step, and until when.

The claim of a plan, a subtask attempt or a synthesis writes its holder (agents.process) and
an expiry LEASE_S ahead into the row. While the step runs, one thread per process renews
every lease the process holds, in one UPDATE per table every LEASE_S / 3. A killed worker
stops renewing, so its leases lapse and the reconciler takes the work back; a slow but live
call keeps its lease for as long as it runs. A step that ends without finishing (its thread
died on an error) stops being renewed too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from . import process
from .models import Job, Subtask

log = logging.getLogger(__name__)

_lock = threading.Lock()
_held: dict[type, Counter] = {Job: Counter(), Subtask: Counter()}
_renewer: threading.Thread | None = None


def expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.LEASE_S)


def claim() -> dict[str, object]:
    """The fields a claim writes, in the same UPDATE as its status."""
    return {"lease_owner": process.me(), "lease_expires_at": expiry()}


@contextmanager
def holding(row: Job | Subtask) -> Iterator[None]:
    """Keep the lease on `row` renewed while the block runs."""
    global _renewer
    model = type(row)
    with _lock:
        _held[model][row.pk] += 1
        if _renewer is None or not _renewer.is_alive():
            _renewer = threading.Thread(target=_renew_forever, name="baton-leases", daemon=True)
            _renewer.start()
    try:
        yield
    finally:
        with _lock:
            _held[model][row.pk] -= 1
            if _held[model][row.pk] <= 0:
                del _held[model][row.pk]


def renew() -> int:
    """Push back the expiry of every lease this process holds; returns rows renewed."""
    with _lock:
        held = {model: list(ids) for model, ids in _held.items() if ids}
    renewed = 0
    for model, ids in held.items():
        renewed += model.objects.filter(pk__in=ids, lease_owner=process.me()).update(
            lease_expires_at=expiry()
        )
    return renewed


def _renew_forever() -> None:
    while True:
        time.sleep(settings.LEASE_S / 3)
        try:
            renewed = renew()
        except Exception:
            # A database restart: this connection is broken, the next pass gets a new one.
            log.warning("could not renew leases", exc_info=True)
            renewed = 0
        if renewed:
            close_old_connections()
        else:
            connection.close()  # idle: hold no connection (nor a test database) open
