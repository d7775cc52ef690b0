"""Standalone mode: one process holds Daphne and a Celery worker on threads.

The worker uses the in-memory broker, so it must live in the same process as the web server
(STACK_NOTES: `app.Worker` installs signal handlers and cannot run off the main thread; the
plain WorkController can).
"""

from __future__ import annotations

import threading

from celery.result import _set_task_join_will_block
from celery.worker import WorkController


def start_worker(concurrency: int = 16) -> WorkController:
    from agents.tasks import start_reconciler
    from orchestrator_site.celery import app

    worker = WorkController(
        app=app,
        hostname="standalone@localhost",
        pool="threads",
        concurrency=concurrency,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
    # An in-process worker marks the process as one where joining a task would block.
    _set_task_join_will_block(False)
    start_reconciler()
    return worker
