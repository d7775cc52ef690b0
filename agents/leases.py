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

from . import process, redisconn, takebacks, threads
from .models import Job, Subtask

log = logging.getLogger(__name__)

ROLL_KEY = "baton:workers"  # worker process -> when it last answered (Redis clock)
MARKER_KEY = "baton:redis-intact"  # gone: Redis lost its data
ROLL_CALL_S = 1.0
# Set when the roll call finds a worker gone: the reconciler runs at once instead of at its
# next tick (its steps, queued messages and limiter slots are taken back sooner).
worker_lost = threading.Event()

_lock = threading.Lock()
_held: dict[type, Counter] = {Job: Counter(), Subtask: Counter()}


def expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.LEASE_S)


def claim() -> dict[str, object]:
    """The fields a claim writes, in the same UPDATE as its status (a new run has not
    crashed yet: agents.takebacks)."""
    return {"lease_owner": process.me(), "lease_expires_at": expiry(), "last_crash": ""}


@contextmanager
def holding(row: Job | Subtask) -> Iterator[None]:
    """Keep the lease on `row` renewed while the block runs; if the block raises, record
    why on the row and let the lease lapse (agents.takebacks)."""
    model = type(row)
    with _lock:
        _held[model][row.pk] += 1
    renewer.start()
    try:
        yield
    except Exception as exc:
        takebacks.crashed(row, process.me(), exc)
        raise
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


def start_roll_call() -> None:
    """Answer the roll call from now on (a worker process, with Redis): the reconciler
    learns of this process's death from it even when it held no lease, and re-sends at once
    the queued work whose messages it may have taken with it."""
    if not settings.REDIS_URL:
        return
    _answer_roll_call()
    renewer.start()


def _answer_roll_call() -> None:
    client = redisconn.redis_client(settings.REDIS_URL)
    client.hset(ROLL_KEY, process.me(), client.time()[0])
    if workers_gone():
        worker_lost.set()


def broker_intact() -> bool:
    """False after Redis lost its data (a restart or a flush), the broker's queue with it:
    the marker `mark_broker_intact` sets is gone. Also false on a new Redis (a harmless
    re-send of what is queued). Always true when the broker is not this Redis (RabbitMQ
    keeps its queues on disk; a Redis flush loses none of them)."""
    if not broker_is_redis():
        return True
    return bool(redisconn.redis_client(settings.REDIS_URL).exists(MARKER_KEY))


def broker_is_redis() -> bool:
    """Redis holds the broker's queues (RabbitMQ, when it is the broker, holds them)."""
    return bool(settings.REDIS_URL) and not settings.CELERY_BROKER_URL.startswith("amqp")


def mark_broker_intact() -> None:
    if broker_is_redis():
        redisconn.redis_client(settings.REDIS_URL).set(MARKER_KEY, 1)


def leave_roll_call() -> None:
    """A worker stopping in good order: it left nothing behind."""
    if settings.REDIS_URL:
        redisconn.redis_client(settings.REDIS_URL).hdel(ROLL_KEY, process.me())


def workers_gone() -> list[str]:
    """Worker processes that stopped answering: gone from this host, or silent for a lease
    (elsewhere). Reported until `forget_workers` strikes them off."""
    if not settings.REDIS_URL:
        return []
    client = redisconn.redis_client(settings.REDIS_URL)
    now = client.time()[0]
    return [
        holder.decode()
        for holder, seen in client.hgetall(ROLL_KEY).items()
        if process.is_gone(holder.decode()) or now - float(seen) > settings.LEASE_S
    ]


def forget_workers(gone: list[str]) -> None:
    if gone:
        redisconn.redis_client(settings.REDIS_URL).hdel(ROLL_KEY, *gone)


def _renew_forever() -> None:
    last_renewal = time.monotonic()
    while True:
        time.sleep(ROLL_CALL_S)
        try:
            if settings.REDIS_URL:
                _answer_roll_call()
        except Exception:
            log.warning("could not answer the roll call", exc_info=True)
        if time.monotonic() - last_renewal < settings.LEASE_S / 3:
            continue
        last_renewal = time.monotonic()
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


renewer = threads.register("baton-leases", __name__, _renew_forever)
