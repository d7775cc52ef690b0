"""Nothing stays stuck: a worker killed with SIGKILL mid-subtask, and the Redis that holds
the broker's queues flushed mid-run. Every job still ends; no completed work runs again.

Real processes on PostgreSQL + Redis: two Celery workers, Daphne, and the simulator with a
latency long enough that the fault lands while calls are in flight.
"""

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from websockets.sync.client import connect

from agents import actions, recovery, team
from agents.models import Agent, Job, JobStatus, SharedState, Subtask, SubtaskStatus
from orchestrator_site.celery import app

from .cast import PASSWORD
from .stack import Stack, check_exactly_once, login, start_stack, wait_until_terminal

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

JOBS = 6
LATENCY_MS = 2000
STACK_ENV = {
    "LLM_TIMEOUT_S": "4",
    # A dead worker's lease lapses after this (a live call, however slow, keeps renewing it).
    "LEASE_S": "4",
    "RECONCILE_EVERY_S": "1",
}
TERMINAL_WITHIN_S = 75


@pytest.fixture(scope="module")
def recovery_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    if not (settings.REDIS_URL and connection.vendor == "postgresql"):
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL and REDIS_URL)")
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("recovery-stack"),
            latency_ms=LATENCY_MS,
            workers=2,
            exclusive=True,
            **STACK_ENV,
        )
    yield running
    running.stop()


def _submit(prefix: str) -> list[int]:
    team.seed()
    Agent.objects.update(max_concurrency=2)
    return [
        actions.submit_job(title=f"{prefix} {n}", description=f"Plan a migration, part {n}.").pk
        for n in range(JOBS)
    ]


def _wait_for_subtasks(ids: list[int], statuses, at_least: int = 1, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(
            Subtask.objects.filter(job_id__in=ids, status__in=statuses).values_list("pk", flat=True)
        )
        if len(found) >= at_least:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no subtask reached {statuses} within {timeout} s")


def _worker_holding(stack: Stack, subtask_ids: list[int]) -> tuple[object, set[int]]:
    """The live worker process running one of these subtasks, and the ones it runs."""
    by_name = {stack.worker_names[w.pid]: w for w in stack.live_workers()}
    active = app.control.inspect(timeout=0.5).active() or {}
    for node, running in active.items():
        held = {
            t["args"][0]
            for t in running
            if t["name"] == "agents.tasks.run_subtask" and t["args"][0] in subtask_ids
        }
        proc = by_name.get(node.split("@")[0])
        if held and proc is not None:
            return proc, held
    return None, set()


def test_a_worker_killed_mid_subtask_loses_nothing(recovery_stack):
    ids = _submit("Killed worker")
    victim, held = None, set()
    deadline = time.monotonic() + 40
    while not held and time.monotonic() < deadline:
        working = _wait_for_subtasks(ids, [SubtaskStatus.WORKING])
        victim, held = _worker_holding(recovery_stack, working)
    assert victim is not None, "no worker was seen running a subtask"
    recovery_stack.kill_worker(victim)
    killed_at = time.monotonic()
    # Only what the dead worker held and had not finished is orphaned.
    orphaned = set(
        Subtask.objects.filter(pk__in=held, status=SubtaskStatus.WORKING).values_list(
            "pk", flat=True
        )
    )
    recovery_stack.start_worker()

    finished = wait_until_terminal(ids, timeout=TERMINAL_WITHIN_S)
    recovered_s = time.monotonic() - killed_at
    figures = check_exactly_once(ids)
    outcomes = Counter(j.status for j in finished)
    orphans = list(Subtask.objects.filter(pk__in=orphaned))
    print(
        f"\nSIGKILL: killed {recovery_stack.worker_names[victim.pid]} holding subtasks "
        f"{sorted(held)} (orphaned {sorted(orphaned)}); all {len(ids)} jobs terminal "
        f"{recovered_s:.1f} s later: {dict(outcomes)}; {figures}; orphans now "
        f"{[(s.pk, s.status, s.attempts) for s in orphans]}"
    )
    assert outcomes == {"completed": JOBS}, [(j.pk, j.status, j.error) for j in finished]
    # The orphans were taken up again: a second claim, then one successful call.
    assert all(s.status == SubtaskStatus.COMPLETED and s.attempts >= 2 for s in orphans), orphans


def test_a_flushed_broker_loses_nothing(recovery_stack):
    ids = _submit("Flushed broker")
    _wait_for_subtasks(ids, [SubtaskStatus.QUEUED, SubtaskStatus.WORKING], at_least=2)
    # Mid-run, with messages waiting in the broker: the workers are frozen for a moment
    # while more jobs are submitted, so their plan_job messages sit in the queue.
    workers = recovery_stack.live_workers()
    for proc in workers:
        proc.send_signal(signal.SIGSTOP)
    try:
        late = [
            actions.submit_job(title=f"Flushed broker late {n}", description="Count sheep.").pk
            for n in range(4)
        ]
        # The stack's Redis database: queues, unacked messages, limiter slots, bindings.
        broker = redis.Redis.from_url(recovery_stack.env["REDIS_URL"])
        # (A worker blocked in BRPOP before the freeze may still get one of them.)
        queued_messages = sum(broker.llen(key) for key in broker.scan_iter("celery*"))
        broker.flushdb()
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGCONT)
    flushed_at = time.monotonic()
    ids += late
    in_flight = Counter(
        Subtask.objects.filter(job_id__in=ids).values_list("status", flat=True).iterator()
    )

    finished = wait_until_terminal(ids, timeout=TERMINAL_WITHIN_S)
    recovered_s = time.monotonic() - flushed_at
    figures = check_exactly_once(ids)
    outcomes = Counter(j.status for j in finished)
    errors = {
        w.name: [line for line in w.read_text().splitlines() if "Error" in line][:3]
        for w in recovery_stack.logs.glob("worker*.log")
    }
    print(
        f"\nFLUSHDB with {queued_messages} messages in the queue and subtasks "
        f"{dict(in_flight)}: all {len(ids)} jobs terminal {recovered_s:.1f} s later: "
        f"{dict(outcomes)}; {figures}; worker log errors {errors}"
    )
    assert queued_messages >= 1, "the flush was meant to lose queued messages"
    assert outcomes == {"completed": len(ids)}, [(j.pk, j.status, j.error) for j in finished]
    assert len(recovery_stack.live_workers()) == 2, "a worker died of the flush"


def test_a_move_by_the_reconciler_reaches_an_open_board(recovery_stack, seeded):
    """A planning step whose worker died goes back to queued, and open boards see it."""
    client = login(recovery_stack.base_url, "bob", PASSWORD)
    board = recovery_stack.base_url.replace("http://", "ws://") + "/ws/board/"
    cookie = {"Cookie": f"sessionid={client.cookies['sessionid']}"}
    # No worker may take the job back up: the board must learn of the move from the
    # reconciler itself, not from a later step.
    paused = recovery_stack.pause_workers()
    try:
        job = Job.objects.create(
            title="Orphaned plan",
            description="Its worker died while planning.",
            status=JobStatus.PLANNING,
            claimed_at=timezone.now() - timedelta(hours=1),
            lease_owner="a-dead-host:1:1",
            lease_expires_at=timezone.now() - timedelta(seconds=1),
        )
        SharedState.objects.create(job=job)
        with connect(board, origin=recovery_stack.base_url, additional_headers=cookie) as ws:
            recovery.reconcile()
            card = f'id="job-card-{job.pk}"'
            seen = ""
            deadline = time.monotonic() + 10
            while card not in seen and time.monotonic() < deadline:
                try:
                    seen += ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
                except TimeoutError:
                    break
        assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
        assert card in seen, "the reconciler's move never reached the board"
        assert 'hx-swap-oob="afterbegin:#cards-queued"' in seen
    finally:
        recovery_stack.resume_workers(paused)
