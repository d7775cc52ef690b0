"""agents.quality: recent means per agent and specialty over a window, read at most once per
few seconds; a drop announced once (a webhook delivery) until the agent recovers; online
scoring of completed live subtasks at a scorer's rate."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from agents import events, quality, tasks
from agents.models import (
    Agent,
    Job,
    JobStatus,
    QualitySample,
    Score,
    Scorer,
    Subtask,
    SubtaskStatus,
)
from agents.redisconn import redis_client
from webhooks import models as webhook_models
from webhooks.models import Delivery, Endpoint, EventType

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh(settings):
    settings.QUALITY_WINDOW_H = 24
    settings.QUALITY_MIN_SAMPLES = 3
    settings.QUALITY_ALERT_BELOW = 0.5
    settings.QUALITY_CACHE_S = 60
    settings.LIVE_WINDOW_S = 5  # the flusher thread waits: these tests flush themselves

    def clear() -> None:
        quality.forget()
        webhook_models.forget_subscriptions()
        if settings.REDIS_URL:
            client = redis_client(settings.REDIS_URL)
            for key in client.scan_iter(quality.ALERTED_PREFIX + "*"):
                client.delete(key)

    clear()
    yield
    clear()


def agent(slug: str, *specialties: str) -> Agent:
    return Agent.objects.create(name=slug.title(), slug=slug, specialties=list(specialties))


def scored(who: Agent, specialty: str, *values: float, ago: timedelta | None = None) -> None:
    job = Job.objects.create(title="Scored", description="d", status=JobStatus.COMPLETED)
    made = []
    for value in values:
        score = Score.objects.create(job=job, scorer_name="t", source="code", value=value)
        made.append(
            QualitySample.objects.create(agent=who, specialty=specialty, value=value, score=score)
        )
    if ago is not None:
        QualitySample.objects.filter(pk__in=[s.pk for s in made]).update(
            created_at=timezone.now() - ago
        )


def test_recent_means_are_per_agent_and_specialty_over_the_window():
    reviewer, coder = agent("reviewer", "review"), agent("coder", "coding")
    scored(reviewer, "review", 0.8, 0.6)
    scored(reviewer, "review", 0.0, ago=timedelta(hours=25))  # out of the window
    scored(reviewer, "coding", 1.0)
    scored(coder, "coding", 0.25, 0.75, 0.5, ago=timedelta(hours=23))

    means = quality.recent()

    assert means == {
        (reviewer.pk, "review"): (pytest.approx(0.7), 2),
        (reviewer.pk, "coding"): (1.0, 1),
        (coder.pk, "coding"): (0.5, 3),
    }
    assert quality.recent([coder.pk]) == {(coder.pk, "coding"): (0.5, 3)}


def test_a_process_reads_the_means_once_per_few_seconds(django_assert_num_queries, settings):
    reviewer = agent("reviewer", "review")
    with django_assert_num_queries(1):
        assert quality.recent() == {}
    with django_assert_num_queries(0):  # "no samples at all" is remembered too
        for _ in range(100):
            assert quality.recent() == {}
    scored(reviewer, "review", 0.9)
    with django_assert_num_queries(0):
        assert quality.recent() == {}
    assert quality.recent(fresh=True) == {(reviewer.pk, "review"): (0.9, 1)}
    settings.QUALITY_CACHE_S = 0
    scored(reviewer, "review", 0.1)
    assert quality.recent() == {(reviewer.pk, "review"): (pytest.approx(0.5), 2)}


def test_the_hourly_series_has_a_gap_for_an_hour_without_scores():
    reviewer = agent("reviewer", "review")
    scored(reviewer, "review", 0.2, 0.4, ago=timedelta(hours=2))
    scored(reviewer, "coding", 1.0)
    now = datetime.now(UTC)
    series = quality.series_for([reviewer.pk], 4, now=now)[reviewer.pk]
    assert series == [None, pytest.approx(0.3), None, 1.0]
    assert quality.series(reviewer, 4)[-1] == 1.0


def drops(capture) -> int:
    with capture(execute=True):
        count = quality.check_drops()
    with capture(execute=True):
        events.flush_now()
    return count


def test_a_drop_is_announced_once_as_a_webhook_delivery(
    sent_tasks, django_capture_on_commit_callbacks
):
    hook = Endpoint.objects.create(
        url="https://hooks.example.org/", events=["agent.quality_dropped"]
    )
    Endpoint.objects.create(url="https://other.example.org/", events=["job.completed"])
    webhook_models.forget_subscriptions()
    reviewer = agent("reviewer", "review")
    scored(reviewer, "review", 0.2, 0.3, 0.4)
    scored(reviewer, "coding", 0.1, 0.1)  # too few scores to be a drop
    scored(agent("fine", "review"), "review", 0.9, 0.8, 0.7)

    assert drops(django_capture_on_commit_callbacks) == 1
    [delivery] = Delivery.objects.all()
    assert delivery.endpoint == hook and delivery.event == EventType.AGENT_QUALITY_DROPPED
    assert delivery.job is None
    assert sent_tasks == [("webhooks.tasks.deliver", (delivery.pk, 1))]
    payload = json.loads(delivery.body)
    assert payload["type"] == "agent.quality_dropped"
    assert payload["data"] | {"url": ""} == {
        "agent": "reviewer",
        "specialty": "review",
        "mean": 0.3,
        "n": 3,
        "threshold": 0.5,
        "window_h": 24,
        "url": "",
    }

    # Still low: nothing new in this process, nor (with Redis, which keeps the mark) in any
    # other; standalone, the one process keeps it.
    assert drops(django_capture_on_commit_callbacks) == 0
    if settings.REDIS_URL:
        quality.forget()
        assert drops(django_capture_on_commit_callbacks) == 0
    assert Delivery.objects.count() == 1


def test_a_recovered_agent_that_drops_again_is_announced_again(
    sent_tasks, django_capture_on_commit_callbacks
):
    Endpoint.objects.create(url="https://hooks.example.org/", events=["agent.quality_dropped"])
    webhook_models.forget_subscriptions()
    reviewer = agent("reviewer", "review")
    scored(reviewer, "review", 0.1, 0.1, 0.1)
    assert drops(django_capture_on_commit_callbacks) == 1
    scored(reviewer, "review", 1.0, 1.0, 1.0, 1.0)  # mean 0.61: recovered
    assert drops(django_capture_on_commit_callbacks) == 0
    scored(reviewer, "review", 0.0, 0.0, 0.0, 0.0, 0.0)  # mean 0.33
    assert drops(django_capture_on_commit_callbacks) == 1
    assert Delivery.objects.count() == 2


def test_the_reconciler_looks_at_most_once_a_minute(settings, django_assert_num_queries):
    settings.QUALITY_CHECK_EVERY_S = 60
    with django_assert_num_queries(1):
        assert quality.check_drops_due() == 0
    with django_assert_num_queries(0):
        assert quality.check_drops_due() == 0


# -- Online scoring ----------------------------------------------------------------------


def online_scorer(type_: str, rate: float) -> Scorer:
    return Scorer.objects.create(
        name=f"LGTM {type_} {rate}",
        slug=f"lgtm-{type_}-{int(rate * 100)}",
        kind=Scorer.Kind.CONTAINS,
        config={"text": "LGTM"},
        online_type=type_,
        sample_rate=rate,
    )


def complete(type_: str, capture) -> Subtask:
    """A live subtask of `type_` completes; its announcement reaches the hooks."""
    reviewer = Agent.objects.filter(slug="reviewer").first() or agent("reviewer", "review")
    job = Job.objects.create(title="Live", description="d", status=JobStatus.WORKING)
    sub = Subtask.objects.create(
        job=job,
        key=f"s-{type_}",
        type=type_,
        agent=reviewer,
        status=SubtaskStatus.WORKING,
        payload={"description": "Review it."},
    )
    with capture(execute=True):
        assert sub.transition(SubtaskStatus.WORKING, SubtaskStatus.COMPLETED, result="Fine. LGTM")
    with capture(execute=True):
        events.flush_now()
    return sub


def test_a_completed_subtask_of_an_online_type_is_scored(sent, django_capture_on_commit_callbacks):
    scorer = online_scorer("review", 1.0)
    online_scorer("coding", 1.0)
    sub = complete("review", django_capture_on_commit_callbacks)

    assert sent == [("score_subtask", (sub.pk, scorer.pk))]
    tasks.score_subtask(*sent[0][1])  # the task a worker runs
    score = Score.objects.get(subtask=sub)
    assert (score.scorer, score.value) == (scorer, 1.0)
    [sample] = QualitySample.objects.filter(score=score)
    assert (sample.agent.slug, sample.specialty, sample.value) == ("reviewer", "review", 1.0)


def test_at_rate_zero_nothing_is_scored(sent, django_capture_on_commit_callbacks):
    online_scorer("review", 0.0)
    complete("review", django_capture_on_commit_callbacks)
    assert sent == []


def test_without_online_scorers_completions_ask_once_in_a_while(django_assert_num_queries, sent):
    done = [
        events.Announcement(
            "subtask.status", 1, {"job_id": 1, "subtask_id": n, "status": "completed"}
        )
        for n in range(20)
    ]
    with django_assert_num_queries(1):
        quality.on_announcements(done)
    with django_assert_num_queries(0):
        for _ in range(100):
            quality.on_announcements(done)
    assert sent == []
