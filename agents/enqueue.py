"""Every Celery message the domain sends, sent once the transaction that asks for it commits
(a webhook delivery's `deliver` message is sent by webhooks/models.py, the same way).

Messages carry ids only; a worker never reads a row that is not committed yet. Tasks are
named rather than imported, so the steps that enqueue work never import the tasks that
run them.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def _send(name: str, *args: int, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: send_now(name, *args, countdown=countdown))


def send_now(name: str, *args: int, countdown: float | None = None) -> None:
    """The broker call itself: callers go through the functions below."""
    current_app.send_task(f"agents.tasks.{name}", args=args, countdown=countdown)


def plan_job(job_id: int, *, countdown: float | None = None) -> None:
    _send("plan_job", job_id, countdown=countdown)


def run_subtask(subtask_id: int) -> None:
    _send("run_subtask", subtask_id)


def synthesize_job(job_id: int, *, countdown: float | None = None) -> None:
    _send("synthesize_job", job_id, countdown=countdown)


def dispatch_ready(*, countdown: float | None = None) -> None:
    _send("dispatch_ready", countdown=countdown)


def advance_experiment(experiment_id: int, *, countdown: float | None = None) -> None:
    _send("advance_experiment", experiment_id, countdown=countdown)


def score_subtask(subtask_id: int, scorer_id: int) -> None:
    _send("score_subtask", subtask_id, scorer_id)
