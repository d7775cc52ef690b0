"""Exactly one job per due time across real workers: three Celery worker processes each run the
schedules' loop, a schedule every second for ten seconds makes ten jobs, and it still makes
exactly ten when the worker that claimed the latest run is killed with SIGKILL mid-way.

Real processes on PostgreSQL + Redis: three workers, Daphne and the LLM simulator.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from agents import actions
from agents.models import Job, JobTemplate, MissedRuns, Overlap, RunOutcome, ScheduleRun

from .stack import start_stack, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

RUNS = 10
WITHIN_S = 60  # an upper bound only: ten one-second runs take about ten seconds


@pytest.fixture(scope="module")
def three_workers(django_db_setup, django_db_blocker, tmp_path_factory):
    if not (settings.REDIS_URL and connection.vendor == "postgresql"):
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL and REDIS_URL)")
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("schedules-stack"),
            workers=3,
            exclusive=True,
            SCHEDULE_TICK_S="0.5",
            SCHEDULE_MISSED_AFTER_S="60",
            LEASE_S="4",  # the killed worker's plans are taken back soon
            RECONCILE_EVERY_S="1",
        )
    yield running
    running.stop()


def every_second(name: str, owner):
    # Each job stops for its plan's review: the workers plan it once and stay free.
    template = JobTemplate.objects.create(
        name=f"{name}-template",
        title=f"{name} {{time}}",
        description="Write a one-line status note.",
        review_plan=True,
        created_by=owner,
    )
    return actions.create_schedule(
        {
            "name": name,
            "template": template,
            "cron": "",
            "interval_s": 1,
            "timezone": "UTC",
            "enabled": True,
            "on_missed": MissedRuns.RUN_ONCE,
            "on_overlap": Overlap.RUN,  # each run's job is still in review at the next
        },
        user=owner,
    )


def run_of(schedule, due):
    return ScheduleRun.objects.filter(schedule=schedule, due_at=due).first()


def claimer_pid(run: ScheduleRun) -> int:
    # The note names the claiming process as host:pid:start (agents.process.me).
    found = re.match(r"Claimed by [^:\s]+:(\d+):", run.note)
    assert found, run.note
    return int(found.group(1))


def assert_exactly_ten(schedule, dues) -> None:
    actions.set_schedule_enabled(schedule, False, user=None)  # no more after the tenth
    runs = list(ScheduleRun.objects.filter(schedule=schedule, due_at__lte=dues[-1]))
    assert sorted(run.due_at for run in runs) == dues  # each due time once, none between
    assert {run.outcome for run in runs} == {RunOutcome.STARTED}, [r.note for r in runs]
    jobs = Job.objects.filter(schedule_run__in=runs)
    assert jobs.count() == len({run.job_id for run in runs}) == RUNS
    assert set(jobs.values_list("template__name", flat=True)) == {schedule.template.name}


def test_a_schedule_every_second_makes_ten_jobs(three_workers, seeded):
    schedule = every_second("every-second", seeded["bob"])
    first = schedule.next_run_at
    dues = [first + timedelta(seconds=k) for k in range(RUNS)]
    wait_until(lambda: run_of(schedule, dues[-1]), "the tenth run", WITHIN_S)
    assert_exactly_ten(schedule, dues)
    claimers = {claimer_pid(run_of(schedule, due)) for due in dues}
    assert claimers <= {w.pid for w in three_workers.workers}


def test_killing_the_worker_that_claimed_the_latest_run_still_makes_ten(three_workers, seeded):
    stack = three_workers
    assert len(stack.live_workers()) == 3
    schedule = every_second("every-second-kill", seeded["bob"])
    first = schedule.next_run_at
    dues = [first + timedelta(seconds=k) for k in range(RUNS)]
    fifth = wait_until(lambda: run_of(schedule, dues[4]), "the fifth run", WITHIN_S)
    latest = ScheduleRun.objects.filter(schedule=schedule).order_by("-due_at").first() or fifth
    victim = next(w for w in stack.live_workers() if w.pid == claimer_pid(latest))
    stack.kill_worker(victim)
    wait_until(lambda: run_of(schedule, dues[-1]), "the tenth run", WITHIN_S)
    assert_exactly_ten(schedule, dues)
    after_kill = [run_of(schedule, due) for due in dues if due > latest.due_at]
    assert after_kill and all(claimer_pid(run) != victim.pid for run in after_kill)
