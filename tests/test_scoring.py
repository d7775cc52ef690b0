"""Scoring outputs (agents/scoring.py): code scorers call no model; the judge goes through the
ordinary call path (the offline model without a key, the simulator over HTTP with one), its
call recorded against the scored job and linked from the Score; a score is made once; each
score is credited to the agents whose work it scored; a person's rating replaces their last."""

from decimal import Decimal

import pytest

from agents import models, offline, scoring
from agents.models import (
    Agent,
    Experiment,
    Job,
    JobStatus,
    LLMCall,
    ModelPrice,
    QualitySample,
    Score,
    Scorer,
    Subtask,
    SubtaskStatus,
)
from tests.cast import person
from tests.inprocess import simulated_llm

pytestmark = pytest.mark.django_db

JUDGE_MODEL = "judge-test-model"


def finished_job(result: str = "Paris is the capital of France.") -> Job:
    """A completed job whose research and coding steps two agents ran (at versions 2 and 1),
    with a failed step and a step no agent ran beside them."""
    job = Job.objects.create(
        title="Capital", description="What is the capital of France?", status=JobStatus.COMPLETED
    )
    Job.objects.filter(pk=job.pk).update(result=result)
    job.refresh_from_db()
    researcher = Agent.objects.create(name="R", slug="r", specialties=["research"])
    coder = Agent.objects.create(name="C", slug="c", specialties=["coding"])
    step = {"job": job, "status": SubtaskStatus.COMPLETED, "result": "done"}
    Subtask.objects.create(key="a", type="research", agent=researcher, agent_version=2, **step)
    Subtask.objects.create(key="b", type="coding", agent=coder, agent_version=1, **step)
    Subtask.objects.create(key="c", type="review", agent=None, **step)
    Subtask.objects.create(
        job=job, key="d", type="coding", agent=coder, status=SubtaskStatus.FAILED
    )
    return job


def scorer(kind: str, config: dict, threshold: float = 0.5, name: str = "") -> Scorer:
    name = name or f"{kind} scorer"
    return Scorer.objects.create(
        name=name, slug=name.replace(" ", "-"), kind=kind, config=config, threshold=threshold
    )


def judge(**config) -> Scorer:
    return scorer("judge", {"rubric": "Is it right?", "model": JUDGE_MODEL, **config})


@pytest.fixture
def offline_model(settings):
    settings.LLM_API_KEY = ""
    settings.REDIS_URL = ""


def test_a_code_scorer_scores_without_any_model_call(offline_model):
    job = finished_job()
    score = scoring.score_job(job, scorer("contains", {"text": "paris"}))

    assert (score.value, score.passed, score.source) == (1.0, True, Score.Source.CODE)
    assert score.scorer_name == "contains scorer"
    assert "contains" in score.reason
    assert score.call is None
    assert not LLMCall.objects.exists()


def test_a_failed_check_does_not_pass():
    score = scoring.score_job(finished_job(), scorer("length", {"min": 1, "max": 5}))
    assert (score.value, score.passed) == (0.0, False)


def test_an_output_a_code_scorer_cannot_score_fails_clearly():
    with pytest.raises(scoring.ScoringFailed, match="needs an expected output"):
        scoring.score_job(finished_job(), scorer("exact", {"case_sensitive": True}))
    assert not Score.objects.exists()


def test_the_expected_output_is_what_an_exact_match_compares_with():
    job = finished_job("  paris is the capital of france. ")
    score = scoring.score_job(
        job,
        scorer("exact", {"case_sensitive": False}),
        expected="Paris is the capital of France.",
    )
    assert score.value == 1.0


def test_the_offline_judge_scores_through_the_call_path(offline_model):
    job = finished_job()
    experiment = Experiment.objects.create(name="E", dataset_name="D")
    score = scoring.score_job(
        job, judge(), experiment=experiment, expected="Paris is the capital of France"
    )

    call = LLMCall.objects.get()
    assert call.purpose == LLMCall.Purpose.JUDGE
    assert call.job_id == job.pk
    assert call.agent_id is None and call.subtask_id is None
    assert call.model == JUDGE_MODEL
    assert score.call_id == call.pk
    assert score.source == Score.Source.JUDGE
    assert score.experiment_id == experiment.pk
    # Every word expected is in the output: the offline judge's highest score.
    assert score.value == offline.JUDGE_HIGH
    assert score.passed is True
    assert "No language model was called" in score.reason


def test_the_judges_model_defaults_to_the_agents_default(offline_model):
    scoring.score_job(finished_job(), scorer("judge", {"rubric": "", "model": ""}))
    assert LLMCall.objects.get().model == Agent._meta.get_field("model").default


def test_the_simulated_judge_is_paid_for_counted_and_asked_once(settings, monkeypatch):
    ModelPrice.objects.create(
        model=JUDGE_MODEL, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00")
    )
    monkeypatch.setattr(models._price_cache, "_read_at", float("-inf"))
    job = finished_job()
    judge_scorer = judge()
    with simulated_llm(settings, judge_style="mixed", seed=3) as sim:
        score = scoring.score_job(job, judge_scorer)
        again = scoring.score_job(job, judge_scorer)
        requests = sim.stats.snapshot()["requests"]

    assert requests == 1  # the second call found the score and asked nothing
    assert again.pk == score.pk
    call = LLMCall.objects.get()
    assert call.http_status == 200
    assert call.purpose == LLMCall.Purpose.JUDGE and call.job_id == job.pk
    assert score.call_id == call.pk
    assert call.cost > 0
    job.refresh_from_db()
    assert job.total_cost == call.cost
    assert job.total_tokens == call.total_tokens > 0
    assert offline.JUDGE_LOW <= score.value <= offline.JUDGE_HIGH
    assert "[simulator]" in score.reason


@pytest.mark.parametrize("style", ["prose", "fence", "out-of-ten"])
def test_messy_judge_answers_over_http_are_scored(settings, style):
    with simulated_llm(settings, judge_style=style):
        score = scoring.score_job(finished_job(), judge(), expected="Paris capital France")
    assert score.value == offline.JUDGE_HIGH


def test_a_judge_that_gives_no_score_is_asked_once_more_then_fails(settings):
    job = finished_job()
    with simulated_llm(settings, judge_style="refusal") as sim:
        with pytest.raises(scoring.ScoringFailed, match="unusable"):
            scoring.score_job(job, judge())
        requests = sim.stats.snapshot()["requests"]

    assert requests == 2
    first, second = LLMCall.objects.order_by("pk")
    assert second.messages[-1]["content"].startswith("Your previous answer could not be used")
    assert not Score.objects.exists()


def test_a_judge_call_that_fails_for_good_fails_the_scoring(settings):
    with simulated_llm(settings) as sim:
        with pytest.raises(scoring.ScoringFailed, match="call failed"):
            scoring.score_job(finished_job(), judge(model="unknown-judge"))
        assert sim.stats.snapshot()["requests"] == 1  # a 404 is not tried again
    assert LLMCall.objects.get().http_status == 404
    assert not Score.objects.exists()


def test_a_judge_call_that_may_pass_is_tried_again(settings, monkeypatch):
    monkeypatch.setattr(scoring, "JUDGE_WAIT_MAX_S", 0.01)
    with simulated_llm(settings, error_rate=1) as sim:
        with pytest.raises(scoring.ScoringFailed, match="500"):
            scoring.score_job(finished_job(), judge())
        assert sim.stats.snapshot()["requests"] == 1 + scoring.JUDGE_RETRIES


def test_nul_is_stripped_from_everything_stored(settings):
    job = finished_job("Paris")
    with simulated_llm(settings, text_suffix="\x00"):
        score = scoring.score_job(job, judge(), expected="Pa\x00ris", notes="n\x00")
    call = LLMCall.objects.get()
    assert "\x00" not in call.response
    assert "\x00" not in str(call.messages)
    assert "\x00" not in score.reason
    code = scoring.score_job(job, scorer("exact", {}), expected="Pa\x00ris")
    assert code.value == 1.0  # the expected output's NUL was dropped before the check


def test_a_job_score_is_credited_to_each_completed_step_with_its_version():
    job = finished_job()
    score = scoring.score_job(job, scorer("contains", {"text": "France"}))

    samples = QualitySample.objects.filter(score=score).order_by("specialty")
    assert [(s.agent.slug, s.agent_version, s.specialty, s.value) for s in samples] == [
        ("c", 1, "coding", 1.0),
        ("r", 2, "research", 1.0),
    ]


def test_a_score_already_made_is_returned_not_made_again():
    job = finished_job()
    contains = scorer("contains", {"text": "France"})
    first = scoring.score_job(job, contains)
    second = scoring.score_job(job, contains)
    assert first.pk == second.pk
    assert Score.objects.count() == 1
    assert QualitySample.objects.count() == 2


def test_a_score_saved_meanwhile_wins_the_race():
    job = finished_job()
    contains = scorer("contains", {"text": "France"})
    theirs = Score.objects.create(
        job=job, scorer=contains, scorer_name="x", source="code", value=0.5
    )
    mine = scoring._save(Score(job=job), contains, 1.0, "late", None)
    assert mine.pk == theirs.pk
    assert Score.objects.count() == 1


def test_online_scoring_scores_one_subtask_and_credits_its_agent(offline_model):
    job = finished_job()
    step = job.subtasks.get(key="a")
    step.payload = {"description": "Find the capital"}
    step.save(update_fields=["payload"])
    judge_scorer = judge()

    scoring.score_subtask(step.pk, judge_scorer.pk)
    scoring.score_subtask(step.pk, judge_scorer.pk)  # once only

    score = Score.objects.get()
    assert score.subtask_id == step.pk and score.job_id == job.pk
    assert LLMCall.objects.count() == 1
    assert "Find the capital" in LLMCall.objects.get().messages[1]["content"]
    [sample] = score.samples.all()
    assert (sample.agent.slug, sample.agent_version, sample.specialty) == ("r", 2, "research")


def test_online_scoring_skips_what_it_cannot_score():
    job = finished_job()
    failed = job.subtasks.get(key="d")
    exact = scorer("exact", {})
    scoring.score_subtask(failed.pk, exact.pk)  # not completed
    scoring.score_subtask(job.subtasks.get(key="a").pk, exact.pk)  # nothing expected: logged
    Scorer.objects.filter(pk=exact.pk).update(enabled=False)
    scoring.score_subtask(job.subtasks.get(key="b").pk, exact.pk)
    assert not Score.objects.exists()


def test_a_rating_maps_to_a_value_and_replaces_the_users_last():
    job = finished_job()
    bob, carol = person("bob"), person("carol")

    first = scoring.rate_job(job, bob, 5, "Spot on")
    assert (first.value, first.rating, first.source) == (1.0, 5, Score.Source.HUMAN)
    assert first.given_by == bob and first.scorer is None
    replaced = scoring.rate_job(job, bob, 2, "On second thought\x00")
    other = scoring.rate_job(job, carol, 3)

    assert replaced.pk == first.pk
    replaced.refresh_from_db()
    assert (replaced.value, replaced.rating, replaced.reason) == (0.25, 2, "On second thought")
    assert other.value == 0.5
    assert Score.objects.filter(job=job, source="human").count() == 2
    # Credited anew: the replaced rating's samples are gone.
    assert sorted(QualitySample.objects.filter(score=replaced).values_list("value", flat=True)) == [
        0.25,
        0.25,
    ]
    assert QualitySample.objects.count() == 4


@pytest.mark.parametrize("rating", [0, 6, True, 2.5])
def test_a_rating_is_a_whole_number_from_1_to_5(rating):
    with pytest.raises(ValueError):
        scoring.rate_job(finished_job(), person("bob"), rating)


def test_default_scorers_are_made_only_when_there_are_none():
    made = scoring.ensure_default_scorers()
    assert sorted(s.kind for s in made) == ["judge", "length"]
    assert {s.name for s in made} == {"LLM judge (helpfulness)", "Not empty"}
    assert scoring.ensure_default_scorers() == []
    Scorer.objects.all().delete()
    scorer("contains", {"text": "x"})
    assert scoring.ensure_default_scorers() == []
    assert Scorer.objects.count() == 1


def test_a_rating_of_an_experiments_job_counts_in_that_experiment():
    job = finished_job()
    experiment = Experiment.objects.create(name="E", dataset_name="D")
    experiment.cases.create(position=1, title="t", description="d", job=job)
    job = Job.objects.get(pk=job.pk)
    score = scoring.rate_job(job, person("bob"), 4)
    assert score.experiment_id == experiment.pk
    assert score.value == 0.75 and score.passed is None
