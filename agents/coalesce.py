"""Coalescing dispatch passes: one pass at a time, and none asked for is ever lost.

Every finished subtask asks for a dispatch pass. Running them one after another behind a
lock makes workers queue on it; instead, a caller that finds a pass running leaves a
"dirty" mark and returns, and the running pass goes round again when it sees the mark.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction

from .redisconn import redis_client

DIRTY_KEY = "baton:dispatch:dirty"
LOCK_ID = 0x6261746F6E  # "baton"
_local_dirty = threading.Event()
_local_lock = threading.Lock()


def mark_dirty() -> None:
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).set(DIRTY_KEY, 1)
    else:
        _local_dirty.set()


def take_dirty() -> bool:
    """Read and clear the mark."""
    if settings.REDIS_URL:
        return redis_client(settings.REDIS_URL).getdel(DIRTY_KEY) is not None
    was = _local_dirty.is_set()
    _local_dirty.clear()
    return was


@contextmanager
def exclusive_pass() -> Iterator[bool]:
    """A transaction in which the caller learns whether it is the one running pass.

    PostgreSQL: a transaction-level advisory lock, shared by every worker process (row locks
    on the agents would also block every metrics update); a pass outside a caller's
    transaction takes the same lock for its session instead (agents.dispatch, one round trip
    with its reads). Elsewhere (standalone SQLite, one process): a process lock held until
    the transaction has ended.
    """
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_ID])
            yield bool(cursor.fetchone()[0])
        return
    if not _local_lock.acquire(blocking=False):
        yield False
        return
    try:
        with transaction.atomic():
            yield True
    finally:
        _local_lock.release()
