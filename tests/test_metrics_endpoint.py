"""GET /metrics: never open; with the right bearer token, a finished job's calls, tokens,
cost and latency, and the jobs by status, are in the scrape."""

import os
import uuid
from datetime import timedelta

import pytest
import redis
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents import recovery, telemetry
from agents.models import Agent, Job, JobStatus, LLMCall

from .inprocess import run_job, simulated_llm, team_on_a_model_of_its_own

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_it_is_not_served_while_no_token_is_set(client, settings, admin_user):
    settings.METRICS_TOKEN = ""
    client.force_login(admin_user)
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_it_refuses_a_missing_or_wrong_token(client, token, admin_user):
    client.force_login(admin_user)  # a session is no credential here
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer nope"}, {"HTTP_AUTHORIZATION": TOKEN}):
        response = client.get("/metrics", **header)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"baton_" not in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401


def test_a_finished_job_shows_in_the_scrape(
    client, token, settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    model = team_on_a_model_of_its_own(monkeypatch)
    before = scrape(client)
    assert value(before, "baton_jobs", status="completed") == 0

    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)

    assert job.status == JobStatus.COMPLETED
    after = scrape(client)
    assert value(after, "baton_jobs", status="completed") == 1
    assert value(after, "baton_jobs", status="failed") == 0
    calls = LLMCall.objects.filter(job=job)
    for slug, purposes in (("orchestrator", ("plan", "synthesis")), ("coder", ("subtask",))):
        mine = calls.filter(agent__slug=slug)
        assert mine.count() >= len(purposes)
        usage = mine.aggregate(i=Sum("prompt_tokens"), o=Sum("completion_tokens"), c=Sum("cost"))
        ok = value(after, "baton_llm_calls_total", agent=slug, model=model, outcome="ok")
        assert ok == mine.count()
        input_tokens = value(after, "baton_llm_tokens_total", agent=slug, model=model, kind="input")
        assert input_tokens == usage["i"] > 0
        output = value(after, "baton_llm_tokens_total", agent=slug, model=model, kind="output")
        assert output == usage["o"] > 0
        cost = value(after, "baton_llm_cost_usd_total", agent=slug, model=model)
        assert cost == pytest.approx(float(usage["c"])) and cost > 0
        for purpose in purposes:
            labels = {"agent": slug, "model": model, "purpose": purpose}
            count = value(after, "baton_llm_call_duration_seconds_count", **labels)
            assert count == mine.filter(purpose=purpose).count()
            slowest = value(after, "baton_llm_call_duration_seconds_bucket", **labels, le="+Inf")
            assert slowest == count
            latency = mine.filter(purpose=purpose).aggregate(s=Sum("latency_s"))["s"]
            total = value(after, "baton_llm_call_duration_seconds_sum", **labels)
            assert total == pytest.approx(latency)


def test_a_failed_call_counts_as_an_error(
    client, token, settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    model = f"unknown-{uuid.uuid4().hex[:10]}"  # the simulator answers 404: a permanent error
    team_on_a_model_of_its_own(monkeypatch)
    Agent.objects.filter(slug="orchestrator").update(model=model)
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)

    assert job.status == JobStatus.FAILED
    after = scrape(client)
    labels = {"agent": "orchestrator", "model": model}
    assert value(after, "baton_llm_calls_total", **labels, outcome="error") == 1
    assert value(after, "baton_llm_calls_total", **labels, outcome="ok") == 0
    assert value(after, "baton_jobs", status="failed") == 1


def test_the_limiter_is_read_at_scrape_standalone(client, token, settings):
    settings.REDIS_URL = ""
    settings.LLM_MAX_CONCURRENCY = 7

    samples = scrape(client)
    assert value(samples, "baton_llm_limiter_cap") == 7
    assert value(samples, "baton_llm_limiter_in_flight") == 0
    assert value(samples, "baton_llm_limiter_waiting") == 0
    assert not any(name == "baton_queue_depth" for name, _ in samples)  # no broker list


def test_a_reconciler_pass_counts_what_it_sent_again(
    client, token, sent, django_capture_on_commit_callbacks
):
    name = "baton_reconciler_redispatches_total"
    job = Job.objects.create(title="Lost", description="Its message was lost.")
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    before = scrape(client)

    with django_capture_on_commit_callbacks(execute=True):
        recovery.reconcile()

    assert ("plan_job", (job.pk,)) in sent
    after = scrape(client)
    assert value(after, name, kind="plans") - value(before, name, kind="plans") >= 1
    for kind in ("syntheses", "subtasks", "slots"):  # counted from the first pass on
        assert (name, frozenset({"kind": kind}.items())) in after


def test_webhook_deliveries_are_counted_by_outcome(client, token):
    outcome = f"test-{uuid.uuid4().hex[:8]}"  # no other process counts this one
    telemetry.webhook_delivered(outcome)
    telemetry.webhook_delivered(outcome)

    assert value(scrape(client), "baton_webhook_deliveries_total", outcome=outcome) == 2


REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/10"


def test_the_queue_depth_is_the_broker_list_length(client, token, settings, monkeypatch):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    from celery import current_app

    queue = f"baton-test-{uuid.uuid4().hex[:8]}"  # not the queue a running stack uses
    monkeypatch.setitem(current_app.conf, "task_default_queue", queue)
    client_ = redis.Redis.from_url(REDIS_URL)
    client_.rpush(queue, "a", "b", "c")
    try:
        with override_settings(REDIS_URL=REDIS_URL, LLM_MAX_CONCURRENCY=9):
            samples = scrape(client)
    finally:
        client_.delete(queue)
    assert value(samples, "baton_queue_depth", queue=queue) == 3
    assert value(samples, "baton_llm_limiter_cap") == 9
