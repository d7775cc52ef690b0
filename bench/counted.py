"""Run a Baton process with counters on the round trips it makes, without touching the product.

    python bench/counted.py COUNTS.json celery -A orchestrator_site worker ...
    python bench/counted.py COUNTS.json daphne orchestrator_site.asgi:application ...

The patches live in this process only: SQL statements (Django's cursor execute and
executemany), psycopg's transaction commands (BEGIN, COMMIT…: with the statements, the round
trips to PostgreSQL), commits, new database connections, Celery messages published
(`before_task_publish`) and channel-layer group sends. The counts cover the process's whole
life and are written to COUNTS.json at exit (Celery's warm shutdown and Twisted's both run
atexit); a worker also writes COUNTS.json.ready once it takes tasks.

`install()` is also used in the bench's own process around job submission.
"""

from __future__ import annotations

import atexit
import json
import sys
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("sql", "tx_commands", "commits", "connects", "broker_msgs", "group_sends")


class Counts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._counts[kind] for kind in KINDS}


def _counting(counts: Counts, kind: str, method):
    def wrapper(*args, **kwargs):
        counts.add(kind)
        return method(*args, **kwargs)

    return wrapper


def _counting_async(counts: Counts, kind: str, method):
    async def wrapper(*args, **kwargs):
        counts.add(kind)
        return await method(*args, **kwargs)

    return wrapper


def install() -> Counts:
    """Patch this process's Django, Celery and Channels to count; return the counters."""
    from celery.signals import before_task_publish
    from channels_redis.core import RedisChannelLayer
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper
    from psycopg._connection_base import BaseConnection

    counts = Counts()
    CursorWrapper.execute = _counting(counts, "sql", CursorWrapper.execute)
    CursorWrapper.executemany = _counting(counts, "sql", CursorWrapper.executemany)
    BaseDatabaseWrapper.commit = _counting(counts, "commits", BaseDatabaseWrapper.commit)
    # BEGIN, COMMIT, ROLLBACK and savepoints: psycopg sends each as a round trip of its own.
    BaseConnection._exec_command = _counting(counts, "tx_commands", BaseConnection._exec_command)
    BaseDatabaseWrapper.connect = _counting(counts, "connects", BaseDatabaseWrapper.connect)
    RedisChannelLayer.group_send = _counting_async(
        counts, "group_sends", RedisChannelLayer.group_send
    )
    before_task_publish.connect(lambda **_: counts.add("broker_msgs"), weak=False)
    return counts


def main() -> None:
    out, program, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    sys.path[0] = str(ROOT)  # the project, not bench/, whose module names could shadow others
    counts = install()
    atexit.register(lambda: out.write_text(json.dumps(counts.snapshot())))
    sys.argv = [program, *args]
    if program == "celery":
        from celery.__main__ import main as celery_main
        from celery.signals import worker_ready

        ready = out.with_name(out.name + ".ready")
        worker_ready.connect(lambda **_: ready.write_text("ready"), weak=False)
        celery_main()
    elif program == "daphne":
        from daphne.cli import CommandLineInterface

        CommandLineInterface.entrypoint()
    else:
        sys.exit(f"counted.py runs celery or daphne, not {program!r}")


if __name__ == "__main__":
    main()
