import threading

import pytest
from django.db import connection

from agents import metrics
from agents.models import Agent


def test_the_success_rate_is_one_before_any_outcome():
    assert metrics.success_rate(0, 0) == 1.0


def test_the_success_rate_is_completed_over_all_outcomes():
    assert metrics.success_rate(3, 1) == 0.75
    assert metrics.success_rate(0, 4) == 0.0


def test_the_retry_delay_doubles_2_4_8_plus_the_jitter():
    assert [metrics.retry_delay(n, jitter=0.0) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert metrics.retry_delay(2, jitter=0.25) == 4.25


def test_the_default_jitter_stays_below_one_second():
    for n in (1, 2, 3):
        delays = [metrics.retry_delay(n) for _ in range(200)]
        assert all(2**n <= d < 2**n + 1 for d in delays)
        assert len(set(delays)) > 1


@pytest.mark.django_db
def test_record_outcome_updates_counts_and_the_moving_average():
    a = Agent.objects.create(name="A", slug="a")
    Agent.objects.record_outcome(a.pk, ok=True, latency_s=10.0)
    Agent.objects.record_outcome(a.pk, ok=True, latency_s=20.0)
    Agent.objects.record_outcome(a.pk, ok=False, latency_s=30.0)
    a.refresh_from_db()
    assert (a.completed_count, a.failed_count, a.latency_samples) == (2, 1, 3)
    # The first sample as it is (10), then 0.7 x old + 0.3 x new: 13, then 18.1.
    first_two = 0.7 * 10.0 + 0.3 * 20.0
    assert a.avg_latency_s == pytest.approx(0.7 * first_two + 0.3 * 30.0)
    assert a.avg_latency_s == pytest.approx(18.1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_outcomes_lose_no_update():
    threads, calls_each = 16, 5
    a = Agent.objects.create(name="A", slug="a")
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work() -> None:
        try:
            start.wait()
            for _ in range(calls_each):
                Agent.objects.record_outcome(a.pk, ok=True, latency_s=1.0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    assert errors == []
    a.refresh_from_db()
    assert a.completed_count == threads * calls_each
    assert a.latency_samples == threads * calls_each
    assert a.avg_latency_s == pytest.approx(1.0)


@pytest.mark.django_db
def test_the_orchestrators_planning_calls_count_in_its_metrics(settings):
    from agents import actions, steps, team

    settings.LLM_API_KEY = ""  # the offline model
    team.seed()
    job = actions.submit_job(title="Counted", description="Plan a small thing and review it.")
    steps.plan_job(job.pk)  # goes on with the subtasks and the synthesis in this thread
    orchestrator = Agent.objects.get(slug="orchestrator")
    own = job.calls.filter(agent=orchestrator, error="")
    assert set(own.values_list("purpose", flat=True)) >= {"plan"}
    assert orchestrator.completed_count == own.count()
    assert orchestrator.latency_samples == own.count()
    assert orchestrator.total_tokens == sum(c.total_tokens for c in own) > 0
