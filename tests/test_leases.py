"""Leases: a dead worker's step comes back at once, a live one is never taken away, and an
answer already paid for is finished from instead of being asked for again."""

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from agents import leases, offline, planning, process, recovery, steps
from agents.models import (
    Agent,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    Subtask,
    SubtaskStatus,
)

pytestmark = pytest.mark.django_db

ELSEWHERE = "another-host:4242:1"


def working_subtask(*, started_ago_s: float, lease_in_s: float, owner: str = ELSEWHERE):
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    job = Job.objects.create(title="J", description="Do it.", status=JobStatus.WORKING)
    SharedState.objects.create(job=job)
    now = timezone.now()
    return Subtask.objects.create(
        job=job,
        key="s1",
        type="coding",
        payload={"description": "write it"},
        agent=agent,
        status=SubtaskStatus.WORKING,
        attempts=1,
        started_at=now - timedelta(seconds=started_ago_s),
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_in_s),
    )


def reconcile(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        recovery.reconcile()


def test_a_lapsed_lease_is_taken_back_at_once(sent, django_capture_on_commit_callbacks):
    sub = working_subtask(started_ago_s=20, lease_in_s=-1)

    reconcile(django_capture_on_commit_callbacks)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.QUEUED
    assert ("run_subtask", (sub.pk,)) in sent


def test_a_live_lease_is_never_taken_away_however_long_the_call(
    sent, django_capture_on_commit_callbacks
):
    sub = working_subtask(started_ago_s=3600, lease_in_s=10)

    reconcile(django_capture_on_commit_callbacks)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.WORKING
    assert sent == []


def test_a_holder_dead_on_this_host_loses_its_lease_before_it_lapses(
    sent, django_capture_on_commit_callbacks
):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    with open(f"/proc/{child.pid}/stat") as f:
        ticks = f.read().rpartition(")")[2].split()[19]
    holder = f"{process.me().split(':')[0]}:{child.pid}:{ticks}"
    sub = working_subtask(started_ago_s=1, lease_in_s=60, owner=holder)

    reconcile(django_capture_on_commit_callbacks)
    assert Subtask.objects.get(pk=sub.pk).status == SubtaskStatus.WORKING  # alive: kept

    child.kill()
    child.wait()
    reconcile(django_capture_on_commit_callbacks)
    assert Subtask.objects.get(pk=sub.pk).status == SubtaskStatus.QUEUED


@override_settings(LEASE_S=30)
def test_renewal_pushes_back_only_the_leases_this_process_holds():
    held = working_subtask(started_ago_s=1, lease_in_s=1, owner=process.me())
    other = Subtask.objects.create(
        job=held.job,
        key="s2",
        type="coding",
        status=SubtaskStatus.WORKING,
        lease_owner=process.me(),
        lease_expires_at=held.lease_expires_at,
    )

    with leases.holding(held):
        assert leases.renew() == 1
    assert leases.renew() == 0  # released with the block

    held.refresh_from_db()
    other.refresh_from_db()
    assert held.lease_expires_at > timezone.now() + timedelta(seconds=25)
    assert other.lease_expires_at < timezone.now() + timedelta(seconds=2)


def test_a_recorded_answer_is_finished_from_without_paying_again(
    simulator, sent, django_capture_on_commit_callbacks
):
    sub = working_subtask(started_ago_s=20, lease_in_s=-1)
    # The dead worker's call was answered and recorded; the worker died before finishing.
    paid = LLMCall.objects.create(
        agent=sub.agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=sub.agent.model,
        response="the answer already paid for",
        prompt_tokens=30,
        completion_tokens=12,
        http_status=200,
        cost=Decimal("0.01"),
    )

    reconcile(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        steps.run_subtask(sub.pk)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.COMPLETED
    assert sub.result == "the answer already paid for"
    assert simulator.stats.snapshot()["requests"] == 0
    assert LLMCall.objects.filter(subtask=sub).count() == 1
    job = Job.objects.get(pk=sub.job_id)
    assert (job.total_tokens, job.total_cost) == (42, Decimal("0.01"))  # counted once
    assert (sub.tokens, sub.cost) == (42, Decimal("0.01"))
    paid.refresh_from_db()
    assert paid.adopted == LLMCall.Reuse.ADOPTED


def rerun_with_recorded_answer(adopted: int, attempts: int, ctx) -> Subtask:
    """A subtask whose worker died after its answer was recorded (and `adopted` so far),
    taken back by the reconciler and run again."""
    sub = working_subtask(started_ago_s=20, lease_in_s=-1)
    Subtask.objects.filter(pk=sub.pk).update(attempts=attempts)
    LLMCall.objects.create(
        agent=sub.agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=sub.agent.model,
        response=f"recorded, {LLMCall.Reuse(adopted).label.lower()}",
        http_status=200,
        adopted=adopted,
    )
    reconcile(ctx)
    with ctx(execute=True):
        steps.run_subtask(sub.pk)
    return Subtask.objects.get(pk=sub.pk)


def test_an_answer_adopted_by_an_attempt_that_died_too_is_adopted_again(
    simulator, sent, django_capture_on_commit_callbacks
):
    sub = rerun_with_recorded_answer(LLMCall.Reuse.ADOPTED, 2, django_capture_on_commit_callbacks)

    assert simulator.stats.snapshot()["requests"] == 0
    assert sub.result == "recorded, adopted by a later attempt"


def test_an_answer_its_own_attempt_counted_after_losing_the_step_is_not_reused(
    simulator, sent, django_capture_on_commit_callbacks
):
    rerun_with_recorded_answer(LLMCall.Reuse.COUNTED, 1, django_capture_on_commit_callbacks)

    assert simulator.stats.snapshot()["requests"] == 1


def test_a_recorded_plan_is_written_without_asking_again(
    simulator, sent, django_capture_on_commit_callbacks
):
    Agent.objects.create(name="Orchestrator", slug="orchestrator", specialties=["planning"])
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding", "research"])
    job = Job.objects.create(
        title="Plan me",
        description="A job whose planner died after the answer.",
        status=JobStatus.PLANNING,
        claimed_at=timezone.now() - timedelta(seconds=30),
        lease_owner=ELSEWHERE,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    SharedState.objects.create(job=job)
    messages = planning.decomposition_messages(job.title, job.description, [], 12)
    LLMCall.objects.create(
        job=job,
        purpose=LLMCall.Purpose.PLAN,
        model="m",
        response=offline.respond(messages),
        http_status=200,
    )

    reconcile(django_capture_on_commit_callbacks)
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        steps.plan_job(job.pk)

    job.refresh_from_db()
    assert job.planned_at is not None
    assert job.subtasks.count() == 3
    # The thread that wrote the plan went on with its subtasks: those calls only.
    assert job.calls.filter(purpose=LLMCall.Purpose.PLAN).count() == 1
    assert simulator.stats.snapshot()["requests"] == job.calls.exclude(purpose="plan").count()


def test_a_dead_workers_queued_work_is_sent_again_at_once(
    sent, django_capture_on_commit_callbacks, settings
):
    """The subtask a killed worker's thread kept to run next has no message: once the roll
    call says the worker is gone, queued subtasks are re-sent without waiting a lease."""
    import os

    import redis as redis_lib

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis_lib.Redis.from_url(url).ping()
    except redis_lib.RedisError:
        pytest.skip(f"Redis is not reachable at {url}")
    settings.REDIS_URL = url
    sub = working_subtask(started_ago_s=5, lease_in_s=10)
    Subtask.objects.filter(pk=sub.pk).update(
        status=SubtaskStatus.QUEUED, updated_at=timezone.now() - timedelta(seconds=5)
    )
    client = redis_lib.Redis.from_url(url)
    host = process.me().split(":")[0]
    dead = f"{host}:999999999:1"
    leases.forget_workers(leases.workers_gone())  # what other tests left behind
    leases.mark_broker_intact()
    try:
        reconcile(django_capture_on_commit_callbacks)
        assert ("run_subtask", (sub.pk,)) not in sent  # nobody died: a lease's wait

        client.hset(leases.ROLL_KEY, dead, client.time()[0])
        reconcile(django_capture_on_commit_callbacks)
        assert ("run_subtask", (sub.pk,)) in sent
        assert not client.hexists(leases.ROLL_KEY, dead)  # reported once
    finally:
        client.hdel(leases.ROLL_KEY, dead)


def test_work_queued_just_before_its_worker_died_is_sent_again_in_the_same_pass(
    sent, django_capture_on_commit_callbacks, settings
):
    """A subtask queued a moment before the kill may be in the dead worker's hands too: the
    pass that learns of the death re-sends it (once forgotten, the worker would leave it to
    wait a whole lease). And the roll call wakes the reconciler as soon as it sees one gone."""
    import os

    import redis as redis_lib

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis_lib.Redis.from_url(url).ping()
    except redis_lib.RedisError:
        pytest.skip(f"Redis is not reachable at {url}")
    settings.REDIS_URL = url
    sub = working_subtask(started_ago_s=5, lease_in_s=10)
    Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.QUEUED, updated_at=timezone.now())
    client = redis_lib.Redis.from_url(url)
    dead = f"{process.me().split(':')[0]}:999999998:1"
    leases.forget_workers(leases.workers_gone())  # what other tests left behind
    leases.mark_broker_intact()
    leases.worker_lost.clear()
    try:
        client.hset(leases.ROLL_KEY, dead, client.time()[0])
        leases._answer_roll_call()
        assert leases.worker_lost.is_set()
        reconcile(django_capture_on_commit_callbacks)
        assert ("run_subtask", (sub.pk,)) in sent
    finally:
        client.hdel(leases.ROLL_KEY, dead, process.me())
        leases.worker_lost.clear()


def test_queued_work_is_sent_again_at_once_after_redis_lost_its_data(
    sent, django_capture_on_commit_callbacks, settings
):
    """A flushed or restarted Redis took the broker's queue: the reconciler notices (its
    marker is gone) and every queued step is re-sent without waiting a lease."""
    import os

    import redis as redis_lib

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis_lib.Redis.from_url(url).ping()
    except redis_lib.RedisError:
        pytest.skip(f"Redis is not reachable at {url}")
    settings.REDIS_URL = url
    client = redis_lib.Redis.from_url(url)
    job = Job.objects.create(title="Queued", description="d", status=JobStatus.QUEUED)
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    leases.forget_workers(leases.workers_gone())  # what other tests left behind
    leases.mark_broker_intact()
    reconcile(django_capture_on_commit_callbacks)
    assert ("plan_job", (job.pk,)) not in sent  # its message may still be queued

    client.delete(leases.MARKER_KEY)  # what a flush or a restart does
    reconcile(django_capture_on_commit_callbacks)
    assert ("plan_job", (job.pk,)) in sent
    assert leases.broker_intact()  # acted on once
