"""Celery tasks: ids in, one pipeline step each. Every task is idempotent (acks_late)."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections

from . import dispatch, pipeline, recovery

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def plan_job(job_id: int) -> None:
    pipeline.plan_job(job_id)


@shared_task(ignore_result=True)
def run_subtask(subtask_id: int) -> None:
    pipeline.run_subtask(subtask_id)


@shared_task(ignore_result=True)
def synthesize_job(job_id: int) -> None:
    pipeline.synthesize_job(job_id)


@shared_task(ignore_result=True)
def dispatch_ready() -> None:
    dispatch.dispatch_ready()


@shared_task(ignore_result=True)
def reconcile() -> None:
    recovery.reconcile()


_reconciler_started = threading.Event()


def start_reconciler() -> None:
    """Run the reconciler every RECONCILE_EVERY_S in this process (once per process).

    Each worker runs its own: passes are idempotent, so no separate beat process is needed.
    """
    if _reconciler_started.is_set():
        return
    _reconciler_started.set()

    def loop() -> None:
        while not _stop.wait(settings.RECONCILE_EVERY_S):
            try:
                recovery.reconcile()
            except Exception:
                log.exception("reconcile pass failed")
            finally:
                close_old_connections()

    threading.Thread(target=loop, name="baton-reconciler", daemon=True).start()


_stop = threading.Event()


@worker_ready.connect
def _on_worker_ready(**kwargs: object) -> None:
    start_reconciler()
