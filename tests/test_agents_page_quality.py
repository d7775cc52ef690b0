"""The agents page shows each agent's quality by specialty with its hourly chart, and a
notice when one dropped below the threshold; its query count does not grow with the scores.
The job page's "why picked" table shows the quality each candidate was scored with."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import quality
from agents.dispatch import dispatch_ready
from agents.models import Agent, Job, JobStatus, QualitySample, Score, Subtask

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rules(settings):
    settings.QUALITY_MIN_SAMPLES = 3
    settings.QUALITY_ALERT_BELOW = 0.5
    settings.QUALITY_WINDOW_H = 24 * 7
    quality.forget()
    yield
    quality.forget()


def agent(slug: str, *specialties: str) -> Agent:
    return Agent.objects.create(name=slug.title(), slug=slug, specialties=list(specialties))


def scored(who: Agent, specialty: str, *values: float, ago: timedelta | None = None) -> None:
    job = Job.objects.create(title="Scored", description="d", status=JobStatus.COMPLETED)
    for value in values:
        score = Score.objects.create(job=job, scorer_name="t", source="code", value=value)
        sample = QualitySample.objects.create(
            agent=who, specialty=specialty, value=value, score=score
        )
        if ago is not None:
            QualitySample.objects.filter(pk=sample.pk).update(created_at=timezone.now() - ago)


def test_a_viewer_sees_quality_by_specialty_and_the_drop(client, viewer):
    reviewer, writer = agent("reviewer", "review"), agent("writer", "research")
    agent("newcomer", "coding")
    scored(reviewer, "review", 0.2, 0.3, 0.1)
    scored(reviewer, "review", 0.9, ago=timedelta(hours=3))
    scored(writer, "research", 0.9, 0.8)

    page = client.get("/agents/")

    assert page.status_code == 200
    html = page.content.decode()
    [row] = [r for r in page.context["quality"] if r.agent == reviewer]
    assert [(s.specialty, round(s.mean, 2), s.n, s.dropped) for s in row.specialties] == [
        ("review", 0.38, 4, True)
    ]
    assert row.series[-4] == 0.9 and row.series[-1] == 0.2
    assert "review 0.38 <small>(n=4, dropped)</small>" in html
    assert "research 0.85 <small>(n=2, prior)</small>" in html  # too few to count
    assert "No scores yet" in html  # the newcomer
    assert "Reviewer's quality in review dropped to 0.38 over 4 scores, below 0.50." in html
    assert 'aria-label="Mean score per hour, last 24 hours: latest 0.2"' in html
    assert "Writer's quality" not in html


def test_no_notice_while_every_agent_is_above_the_threshold(client, viewer):
    scored(agent("reviewer", "review"), "review", 0.9, 0.7, 0.8)
    page = client.get("/agents/")
    assert page.context["quality_notices"] == []
    assert "quality in review dropped" not in page.content.decode()


def page_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/agents/").status_code == 200
    return len(queries)


def test_its_query_count_does_not_grow_with_the_scores(client, viewer):
    reviewer, writer = agent("reviewer", "review"), agent("writer", "research")
    scored(reviewer, "review", 0.5)
    few = page_queries(client)
    for hours in range(0, 30, 3):
        scored(reviewer, "review", 0.1, 0.9, ago=timedelta(hours=hours))
        scored(writer, "research", 0.4, ago=timedelta(hours=hours))
        scored(reviewer, "coding", 0.3)
    assert page_queries(client) == few


def test_why_picked_shows_each_candidates_quality(client, viewer):
    better, worse = agent("better", "review"), agent("worse", "review")
    agent("fresh", "review")
    scored(better, "review", 0.9, 0.9, 0.9)
    scored(worse, "review", 0.2, 0.2, 0.2)
    job = Job.objects.create(title="Review", description="d", status=JobStatus.WORKING)
    sub = Subtask.objects.create(job=job, key="r", type="review", payload={"description": "r"})

    dispatch_ready()

    sub.refresh_from_db()
    assert sub.agent == better
    html = client.get(job.get_absolute_url()).content.decode()
    assert '<th scope="col">Quality</th>' in html
    assert "<td>0.90 (n=3, +8.0)</td>" in html
    assert "<td>0.20 (n=3, -6.0)</td>" in html
    assert "<td>—, prior</td>" in html  # fresh: no scores
