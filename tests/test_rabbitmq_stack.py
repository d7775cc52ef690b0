"""RabbitMQ as the broker (CELERY_BROKER_URL=amqp://...): the stack's end-to-end job, and a
worker killed mid-subtask, on durable quorum queues; Redis stays the channel layer, limiter
and event feed.

Real processes on PostgreSQL, Redis and RabbitMQ. Skipped where RabbitMQ does not answer
(a failure in CI, which starts it).
"""

import os
import re
import socket
from collections import Counter
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

from agents import process
from agents.models import Agent, Job, Subtask, SubtaskStatus

from .cast import PASSWORD
from .stack import (
    check_exactly_once,
    login,
    start_stack,
    submit,
    wait_until,
    wait_until_terminal,
)
from .test_end_to_end import test_it_completes_a_job_submitted_in_the_form  # noqa: F401

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

AMQP_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
JOBS = 4
METRICS_TOKEN = "rabbitmq-stack-metrics-token"


def rabbitmq_answers(url: str) -> bool:
    where = urlparse(url)
    try:
        with socket.create_connection((where.hostname, where.port or 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two workers on RabbitMQ; this module's tests (and the end-to-end test it imports)
    run on it. The other stacks' workers are paused: they share the database."""
    if not (settings.REDIS_URL and connection.vendor == "postgresql"):
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL and REDIS_URL)")
    if not rabbitmq_answers(AMQP_URL):
        pytest.skip(f"RabbitMQ does not answer at {AMQP_URL} (rabbitmq-server -detached)")
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("rabbitmq-stack"),
            latency_ms=1500,
            workers=2,
            exclusive=True,
            CELERY_BROKER_URL=AMQP_URL,
            LLM_TIMEOUT_S="4",
            LEASE_S="4",
            RECONCILE_EVERY_S="1",
            METRICS_TOKEN=METRICS_TOKEN,
        )
    yield running
    running.stop()


def test_the_workers_consume_a_durable_quorum_queue(stack):
    from amqp.exceptions import ChannelError
    from kombu import Connection

    with Connection(AMQP_URL) as conn:
        channel = conn.default_channel
        # A passive declare with other arguments than the queue's is refused: this asks
        # whether "celery" is durable and a quorum queue.
        channel.queue_declare(
            "celery", passive=True, durable=True, arguments={"x-queue-type": "quorum"}
        )
        with pytest.raises(ChannelError):
            conn.channel().queue_declare("no-such-queue-baton", passive=True)
    log = stack.worker_log(stack.live_workers()[0]).read_text()
    assert "amqp://guest:**@127.0.0.1:5672//" in log


def test_a_worker_killed_mid_subtask_loses_nothing(stack, seeded, django_db_blocker):
    Agent.objects.update(max_concurrency=2)
    client = login(stack.base_url, "alice", PASSWORD)
    titles = [f"Rabbit killed worker {n}" for n in range(JOBS)]
    for title in titles:
        submit(client, title, "Plan a migration, carefully.")

    def held_by_a_worker():
        pids = {w.pid: w for w in stack.live_workers()}
        for sub in Subtask.objects.filter(job__title__in=titles, status=SubtaskStatus.WORKING):
            pid = int(sub.lease_owner.split(":")[1])
            if pid in pids:
                return pids[pid], sub.lease_owner

    victim, holder = wait_until(held_by_a_worker, "a worker running a subtask", timeout=40)
    stack.kill_worker(victim)
    assert process.is_gone(holder)
    orphaned = set(
        Subtask.objects.filter(lease_owner=holder, status=SubtaskStatus.WORKING).values_list(
            "pk", flat=True
        )
    )
    stack.start_worker()
    ids = list(Job.objects.filter(title__in=titles).values_list("pk", flat=True))
    finished = wait_until_terminal(ids, timeout=75)

    assert Counter(j.status for j in finished) == {"completed": JOBS}
    figures = check_exactly_once(ids)
    orphans = list(Subtask.objects.filter(pk__in=orphaned))
    assert all(s.status == SubtaskStatus.COMPLETED and s.attempts >= 2 for s in orphans)
    print(f"\nRabbitMQ, SIGKILL mid-subtask: orphaned {sorted(orphaned)}; {figures}")


def test_metrics_count_the_messages_waiting_in_rabbitmq(stack, seeded):
    """The queue-depth gauge asks RabbitMQ (a Redis list of that name would stay empty)."""
    import httpx

    def depth() -> float:
        text = httpx.get(
            f"{stack.base_url}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        ).text
        found = re.search(r'^baton_queue_depth\{queue="celery"\} (\S+)$', text, re.M)
        assert found, text[-2000:]
        return float(found.group(1))

    paused = stack.pause_workers()
    try:
        client = login(stack.base_url, "alice", PASSWORD)
        submit(client, "Rabbit queued", "Wait in the queue.")
        assert wait_until(lambda: depth() >= 1, "the plan's message counted", timeout=20)
    finally:
        stack.resume_workers(paused)
    wait_until(lambda: depth() == 0, "the queue drained", timeout=30)
