"""Standalone mode: one process holds Daphne and a Celery worker on threads.

The worker uses the in-memory broker, so it must live in the same process as the web server
(STACK_NOTES: `app.Worker` installs signal handlers and cannot run off the main thread; the
plain WorkController can).
"""

from __future__ import annotations

from celery.result import _set_task_join_will_block
from celery.worker import WorkController

from agents import threads
from agents.tasks import start_reconciler
from orchestrator_site.celery import app

_worker: WorkController | None = None


def start_worker(concurrency: int = 16) -> WorkController:
    """Start the in-process worker (once: a second call returns the running one)."""
    global _worker
    if _worker is None or not worker_thread.alive():
        _worker = WorkController(
            app=app,
            hostname="standalone@localhost",
            pool="threads",
            concurrency=concurrency,
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        worker_thread.start()
    # An in-process worker marks the process as one where joining a task would block.
    _set_task_join_will_block(False)
    start_reconciler()
    return _worker


def _run_worker() -> None:
    _worker.start()


worker_thread = threads.register("celery-worker", __name__, _run_worker)
