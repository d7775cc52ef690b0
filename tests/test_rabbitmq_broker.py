"""CELERY_BROKER_URL picks the broker: RabbitMQ gets durable quorum queues, and the
reconciler's "Redis lost the broker's queue" path stays for a Redis broker only."""

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from agents import enqueue, leases, recovery
from agents.models import Job, JobStatus

from .stack import ROOT

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
SHOW_CONF = (
    "from orchestrator_site.celery import app; c = app.conf; "
    "print(c.broker_url, c.task_default_queue_type, c.task_default_exchange_type, "
    "c.task_acks_late, c.worker_prefetch_multiplier)"
)


def celery_conf(tmp_path, **env: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")},
        "BATON_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW_CONF}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_an_amqp_broker_gets_durable_quorum_queues(tmp_path):
    result = celery_conf(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0", CELERY_BROKER_URL=AMQP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [AMQP, "quorum", "topic", "True", "1"]


def test_the_broker_defaults_to_redis_and_standalone_to_memory(tmp_path):
    redis = celery_conf(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0")
    assert redis.stdout.split()[:2] == ["redis://127.0.0.1:6379/0", "classic"], redis.stderr
    standalone = celery_conf(tmp_path)
    assert standalone.stdout.split()[:1] == ["memory://"], standalone.stderr


def test_a_broker_without_redis_is_refused_by_name(tmp_path):
    # Celery would take the variable over memory://; Baton needs Redis beside it anyway.
    result = celery_conf(tmp_path, CELERY_BROKER_URL=AMQP)
    assert result.returncode != 0
    assert "CELERY_BROKER_URL" in result.stderr


@pytest.mark.django_db
def test_with_rabbitmq_a_redis_without_the_marker_loses_no_queue(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    """RabbitMQ keeps its queues whatever happens to Redis: the reconciler must not take a
    missing marker (a flushed or new Redis) for a lost queue and re-send everything queued
    at each pass. It waits a lease, as for any queued step."""
    import redis as redis_lib

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis_lib.Redis.from_url(url).ping()
    except redis_lib.RedisError:
        pytest.skip(f"Redis is not reachable at {url}")
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = AMQP
    sent = []
    monkeypatch.setattr(enqueue, "send_now", lambda name, pk, **opts: sent.append((name, pk)))
    job = Job.objects.create(title="Queued", description="d", status=JobStatus.QUEUED)
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    # A marker nobody set (this Redis may be shared: the real one is left alone).
    monkeypatch.setattr(leases, "MARKER_KEY", f"baton:redis-intact:test-{uuid.uuid4().hex}")

    assert leases.broker_intact()
    with django_capture_on_commit_callbacks(execute=True):
        recovery.reconcile()
    assert ("plan_job", job.pk) not in sent
