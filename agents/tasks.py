"""Celery tasks: ids in, one step each. Every task is idempotent (acks_late).

They are sent by agents.enqueue, by name, once the sending transaction commits.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import task_prerun, worker_ready, worker_shutdown
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from . import (
    dispatch,
    experiments,
    leases,
    limiter,
    recovery,
    schedules,
    scoring,
    steps,
    telemetry,
    threads,
)

log = logging.getLogger(__name__)


# A step that met a database restart runs again a moment later instead of waiting for the
# reconciler: every step is idempotent, and a paid answer is recorded before it is used.
STEP = {
    "ignore_result": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 8,
    "max_retries": 8,
}


@shared_task(**STEP)
def plan_job(job_id: int) -> None:
    steps.plan_job(job_id)


@shared_task(**STEP)
def run_subtask(subtask_id: int) -> None:
    steps.run_subtask_and_continue(subtask_id)


@shared_task(**STEP)
def synthesize_job(job_id: int) -> None:
    steps.synthesize_job(job_id)


@shared_task(**STEP)
def dispatch_ready() -> None:
    dispatch.dispatch_ready()


@shared_task(**STEP)
def advance_experiment(experiment_id: int) -> None:
    experiments.advance(experiment_id)


@shared_task(**STEP)
def score_subtask(subtask_id: int, scorer_id: int) -> None:
    scoring.score_subtask(subtask_id, scorer_id)


@shared_task(ignore_result=True)
def reconcile() -> None:
    recovery.reconcile()


def start_reconciler() -> None:
    """Run the reconciler every RECONCILE_EVERY_S, and the schedules' loop, in this process
    (once per process).

    Each worker runs its own: passes are idempotent and a schedule's due time is claimed by
    one of them, so no separate beat process is needed.
    """
    reconciler.start()
    schedules.scheduler.start()


def _reconcile_forever() -> None:
    wait = settings.RECONCILE_EVERY_S
    while not _stop.is_set():
        leases.worker_lost.wait(wait)  # or at once, when the roll call finds one gone
        leases.worker_lost.clear()
        if _stop.is_set():
            return
        try:
            recovery.reconcile()
        except Exception:
            log.exception("reconcile pass failed")
        finally:
            close_old_connections()
        # A dead worker's limiter slots come free once its calls cannot still run at
        # the provider: the next pass then, rather than up to a whole tick later.
        soon = limiter.next_reap_in_s
        wait = settings.RECONCILE_EVERY_S
        if soon is not None:
            wait = min(soon + 0.05, wait)


_stop = threading.Event()  # seen at its next tick (or at once when a worker is lost)
reconciler = threads.register("baton-reconciler", __name__, _reconcile_forever, _stop)


@worker_ready.connect
def _on_worker_ready(**kwargs: object) -> None:
    leases.start_roll_call()
    start_reconciler()


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs: object) -> None:
    schedules.scheduler.stop(timeout=5)  # a stopping worker claims no more due times
    telemetry.process_stopped()
    leases.leave_roll_call()


@task_prerun.connect
def _drop_broken_connections(**kwargs: object) -> None:
    # Connections outlive tasks (CELERY_DB_REUSE_MAX); one broken by a database restart, or
    # older than CONN_MAX_AGE, is replaced before the next task uses it. One inside a
    # transaction is its caller's (a task applied in-process, as tests do): never closed.
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()
