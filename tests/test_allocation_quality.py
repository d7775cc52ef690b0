"""The allocator's quality term: bounded, exactly neutral below the minimum of scores,
never lower for a better mean; and a dispatch pass that picks the better of two
specialists who differ only in their scores, saying so in its reasons."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agents import quality
from agents.allocation import Candidate, QualityRule, choose, score
from agents.dispatch import dispatch_ready
from agents.models import Job, JobStatus, QualitySample, Score, Subtask

from .test_dispatch import make_agent, make_job, make_subtask

means = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
counts = st.integers(min_value=0, max_value=10_000)
rules = st.builds(
    QualityRule,
    weight=st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False),
    min_samples=st.integers(min_value=1, max_value=100),
)


def candidate(id: int = 1, quality: float | None = None, quality_n: int = 0, **fields) -> Candidate:
    values = {
        "slug": f"agent-{id}",
        "specialties": ("review",),
        "completed": 3,
        "failed": 1,
        "avg_latency_s": 2.5,
        "load": 1,
        "max_concurrency": 10,
    } | fields
    return Candidate(id=id, quality=quality, quality_n=quality_n, **values)


@given(rule=rules, mean=means, n=counts)
def test_the_term_is_bounded_by_half_the_weight(rule, mean, n):
    assert abs(rule.term(mean, n)) <= rule.weight / 2 + 1e-9


@given(rule=rules, mean=means, data=st.data())
def test_too_few_scores_get_exactly_the_neutral_prior(rule, mean, data):
    n = data.draw(st.integers(min_value=0, max_value=rule.min_samples - 1))
    assert rule.term(mean, n) == 0.0
    assert score(candidate(quality=mean, quality_n=n), rule) == score(candidate(), rule)


@given(rule=rules, low=means, high=means, n=counts)
def test_the_score_never_falls_as_quality_rises(rule, low, high, n):
    low, high = sorted((low, high))
    worse = candidate(quality=low, quality_n=n)
    better = candidate(quality=high, quality_n=n)
    assert score(better, rule) >= score(worse, rule)


@given(low=means, high=means, n=st.integers(min_value=5, max_value=10_000))
def test_with_all_else_equal_the_better_agent_wins(low, high, n):
    assume(high - low > 1e-6)
    rule = QualityRule(weight=40.0, min_samples=5)
    # The worse one has the lower id, so a tie would go to it.
    worse = candidate(1, quality=low, quality_n=n)
    better = candidate(2, quality=high, quality_n=n)
    chosen, reasons = choose("review", [worse, better], rule=rule)
    assert chosen == better
    assert reasons["candidates"][0]["agent"] == "agent-2"


def test_a_candidate_without_scores_scores_as_before():
    rule = QualityRule(weight=40.0, min_samples=5)
    assert score(candidate(), rule) == pytest.approx(75 - 0.25 - 5)
    assert score(candidate(quality=1.0, quality_n=5), rule) == pytest.approx(75 - 0.25 - 5 + 10)
    assert score(candidate(quality=0.0, quality_n=5), rule) == pytest.approx(75 - 0.25 - 5 - 10)


def test_choose_takes_each_agents_quality_for_the_type_alone():
    writer = candidate(1, specialties=("review", "research"))
    reviewer = candidate(2, specialties=("review", "research"))
    qualities = {(1, "review"): (0.1, 50), (2, "review"): (0.9, 50), (1, "research"): (1.0, 50)}
    chosen, reasons = choose("review", [writer, reviewer], qualities=qualities)
    assert chosen.id == 2 and (chosen.quality, chosen.quality_n) == (0.9, 50)
    chosen, _ = choose("research", [writer, reviewer], qualities=qualities)
    assert chosen.id == 1
    # No scores for research: reviewer is neutral there, whatever it carried for review.
    assert choose("research", [reviewer], qualities=qualities)[0].quality is None


# -- Dispatch, from QualitySample rows ---------------------------------------------------


@pytest.fixture
def fresh_quality(settings):
    settings.QUALITY_WEIGHT = 40.0
    settings.QUALITY_MIN_SAMPLES = 3
    quality.forget()
    yield
    quality.forget()


def scored(agent, specialty: str, values: list[float]) -> None:
    job = Job.objects.create(title="Scored", description="d", status=JobStatus.COMPLETED)
    for value in values:
        score = Score.objects.create(job=job, scorer_name="t", source="code", value=value)
        QualitySample.objects.create(agent=agent, specialty=specialty, value=value, score=score)


@pytest.mark.django_db
def test_dispatch_gives_the_work_to_the_better_specialist(fresh_quality):
    # Same history, same load: only their review scores differ (the worse one first, so a
    # tie would be its).
    worse = make_agent("worse", specialties=("review",))
    better = make_agent("better", specialties=("review",))
    scored(worse, "review", [0.2, 0.3, 0.1, 0.2])
    scored(better, "review", [0.9, 0.8, 1.0, 0.9])
    scored(worse, "coding", [1.0, 1.0, 1.0, 1.0])  # another specialty counts for nothing here
    sub = make_subtask(make_job(), "r", type="review")

    assert dispatch_ready() == 1

    sub = Subtask.objects.get(pk=sub.pk)
    assert sub.agent == better
    terms = {c["agent"]: c for c in sub.allocation["candidates"]}
    assert terms["better"]["quality"] == 0.9 and terms["better"]["quality_n"] == 4
    assert terms["worse"]["quality"] == 0.2
    assert terms["better"]["quality_term"] > 0 > terms["worse"]["quality_term"]
    assert terms["better"]["score"] - terms["worse"]["score"] == pytest.approx(
        terms["better"]["quality_term"] - terms["worse"]["quality_term"], abs=0.01
    )


@pytest.mark.django_db
def test_without_enough_scores_the_newcomer_is_neutral(fresh_quality):
    veteran = make_agent("veteran", specialties=("review",))
    make_agent("newcomer", specialties=("review",))
    scored(veteran, "review", [0.2, 0.2, 0.2])  # poor, and enough to count
    sub = make_subtask(make_job(), "r", type="review")

    dispatch_ready()

    sub = Subtask.objects.get(pk=sub.pk)
    assert sub.agent.slug == "newcomer"
    terms = {c["agent"]: c for c in sub.allocation["candidates"]}
    assert "quality" not in terms["newcomer"]  # no scores: the neutral prior, as before
    assert terms["newcomer"]["score"] == 100
