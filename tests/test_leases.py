"""Leases: a dead worker's step comes back at once, and a live one is never taken away. (That an
answer already paid for is finished from, not asked for again, is in test_steps.py.)"""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from agents import leases, process
from agents.models import (
    Job,
    JobStatus,
    Subtask,
    SubtaskStatus,
)

from .inprocess import reconcile, working_subtask

pytestmark = pytest.mark.django_db


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
        # The re-send is on the record, against the subtask and its job.
        assert sub.auditentry_set.filter(action="redispatch", job_id=sub.job_id).count() == 1
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
    assert job.audit.filter(action="redispatch", subtask=None).count() == 1
    assert leases.broker_intact()  # acted on once
