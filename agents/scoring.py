"""Scoring an output: code scorers, the LLM judge (through the ordinary call path) and the
Score rows they leave, each credited to the agents whose work it scored.

The judge is an agent no row holds (`judge_agent`): its calls go through `calls.call_llm`
like any step's, so the provider cap, the trace and the job's cost apply (purpose "judge",
against the scored job), but not the job's budget, which is for its own work. A judge that
errs is asked again (a provider error that may pass, a few times, backing off; an answer
with no usable score, once, told why); then ScoringFailed. Scores are unique per (job or
subtask, scorer), and a person's per (job, person): scoring again returns the row there is,
and makes no second call.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import IntegrityError, transaction

from . import calls, judging, lifecycle, llm
from .models import (
    Agent,
    Job,
    LLMCall,
    QualitySample,
    Score,
    Scorer,
    Subtask,
    SubtaskStatus,
)
from .text import clean

log = logging.getLogger(__name__)

JUDGE_MAX_TOKENS = 300
# Provider errors that may pass are tried this many times more, waiting as steps do (2, 4 s
# plus jitter, or a 429's Retry-After), never longer than JUDGE_WAIT_MAX_S at a time.
JUDGE_RETRIES = 2
JUDGE_WAIT_MAX_S = 10.0
HUMAN_SCORER_NAME = "Human rating"
REASON_CHARS = 2000  # Score.reason's bound
ERROR_CHARS = 300  # ExperimentCase.scoring_error's bound

DEFAULT_SCORERS = (
    {
        "name": "LLM judge (helpfulness)",
        "slug": "llm-judge-helpfulness",
        "kind": Scorer.Kind.JUDGE,
        "config": {"rubric": judging.DEFAULT_RUBRIC, "model": ""},
        "threshold": 0.6,
    },
    {
        "name": "Not empty",
        "slug": "not-empty",
        "kind": Scorer.Kind.LENGTH,
        "config": {"min": 1, "max": None},
        "threshold": 1.0,
    },
)


class ScoringFailed(Exception):
    """The output could not be scored: the judge's call failed, or its answer was unusable
    after a retry, or the scorer cannot score this output. The message is fit to show, and
    names no scorer (the caller knows which)."""


def score_job(
    job: Job, scorer: Scorer, *, experiment=None, expected: str = "", notes: str = ""
) -> Score:
    """The scorer's Score of the job's final result, made once (a second call returns the
    first's row, without a provider call); credited to the agents of its completed steps."""
    found = _existing(job=job, scorer=scorer, subtask=None)
    if found is not None:
        return found
    value, reason, call = _evaluate(
        scorer,
        job=job,
        title=job.title,
        description=job.description,
        output=job.result,
        expected=expected,
        notes=notes,
    )
    score = Score(job=job, experiment=experiment, subtask=None)
    return _save(score, scorer, value, reason, call)


def score_subtask(subtask_id: int, scorer_id: int) -> None:
    """Online scoring: one scorer on one completed live subtask's result (a Celery task's
    body: ids in, and nothing raised for an output that cannot be scored, which is logged)."""
    sub = (
        Subtask.objects.select_related("job")
        .filter(pk=subtask_id, status=SubtaskStatus.COMPLETED)
        .first()
    )
    scorer = Scorer.objects.filter(pk=scorer_id, enabled=True).first()
    if sub is None or scorer is None:
        return
    if _existing(job=sub.job, scorer=scorer, subtask=sub) is not None:
        return
    description = sub.payload.get("description", "") if isinstance(sub.payload, dict) else ""
    try:
        value, reason, call = _evaluate(
            scorer,
            job=sub.job,
            title=sub.job.title,
            description=description if isinstance(description, str) else str(description),
            output=sub.result,
        )
    except ScoringFailed as exc:
        log.warning("online scoring of subtask %s by %s failed: %s", sub.pk, scorer.slug, exc)
        return
    _save(Score(job=sub.job, subtask=sub), scorer, value, reason, call)


def credit(score: Score) -> list[QualitySample]:
    """The score's QualitySample rows, anew (a replaced rating's old ones go): for a job's
    score one per completed subtask of the job, for a subtask's score one for that subtask,
    each with the agent, its version and the subtask's type as the specialty. A subtask no
    agent ran is skipped."""
    if score.subtask_id is not None:
        subtasks = Subtask.objects.filter(pk=score.subtask_id)
    else:
        subtasks = Subtask.objects.filter(job_id=score.job_id, status=SubtaskStatus.COMPLETED)
    rows = subtasks.filter(agent__isnull=False).values_list("agent_id", "agent_version", "type")
    samples = [
        QualitySample(
            agent_id=agent_id,
            agent_version=version,
            specialty=specialty,
            value=score.value,
            score=score,
        )
        for agent_id, version, specialty in rows
    ]
    with transaction.atomic():
        QualitySample.objects.filter(score=score).delete()
        return QualitySample.objects.bulk_create(samples)


def rate_job(job: Job, user, rating: int, comment: str = "") -> Score:
    """`user`'s 1–5 rating of the job (value (rating − 1) / 4), replacing their previous
    one; credited like any score. The caller (actions.scores) checks who may rate."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValueError("a rating is a whole number from 1 to 5")
    case = getattr(job, "experiment_case", None) if job.pk else None
    values = {
        "scorer": None,
        "scorer_name": HUMAN_SCORER_NAME,
        "subtask": None,
        "experiment_id": case.experiment_id if case is not None else None,
        "value": (rating - 1) / 4,
        "passed": None,
        "reason": clean(comment or "").strip()[:REASON_CHARS],
        "rating": rating,
        "call": None,
    }
    for attempt in range(2):
        try:
            with transaction.atomic():
                score, _ = Score.objects.update_or_create(
                    job=job, given_by=user, source=Score.Source.HUMAN, defaults=values
                )
                credit(score)
            return score
        except IntegrityError:  # the same person's rating, saved meanwhile: update it
            if attempt:
                raise
    raise AssertionError("unreachable")


def ensure_default_scorers() -> list[Scorer]:
    """Two scorers to start with, when there are none: an LLM judge of helpfulness and a
    check that the output is not empty. The ones made (none when any scorer exists)."""
    if Scorer.objects.exists():
        return []
    made = []
    for fields in DEFAULT_SCORERS:
        scorer, created = Scorer.objects.get_or_create(slug=fields["slug"], defaults=fields)
        if created:
            made.append(scorer)
    return made


def judge_agent(scorer: Scorer) -> Agent:
    """The judge as an unsaved agent: its model, a temperature of 0, a short answer."""
    model = (scorer.config or {}).get("model") or ""
    default = getattr(settings, "JUDGE_MODEL", "") or Agent._meta.get_field("model").default
    return Agent(
        name="Judge",
        slug="judge",
        model=model or default,
        temperature=0,
        max_tokens=JUDGE_MAX_TOKENS,
    )


def _existing(*, job: Job, scorer: Scorer, subtask: Subtask | None) -> Score | None:
    rows = Score.objects.filter(job=job, scorer=scorer)
    rows = rows.filter(subtask=subtask) if subtask is not None else rows.filter(subtask=None)
    return rows.first()


def _evaluate(
    scorer: Scorer,
    *,
    job: Job,
    title: str,
    description: str,
    output: str,
    expected: str = "",
    notes: str = "",
) -> tuple[float, str, LLMCall | None]:
    if scorer.kind == Scorer.Kind.JUDGE:
        return _judge(scorer, job, title, description, output, expected, notes)
    try:
        config = judging.check_config(scorer.kind, scorer.config or {})
        value, reason = judging.run_code(scorer.kind, config, output, expected)
    except (judging.ScorerConfigError, judging.NotScorable) as exc:
        raise ScoringFailed(str(exc)) from None
    return value, reason, None


def _judge(
    scorer: Scorer,
    job: Job,
    title: str,
    description: str,
    output: str,
    expected: str,
    notes: str,
) -> tuple[float, str, LLMCall]:
    try:
        config = judging.check_config(Scorer.Kind.JUDGE, scorer.config or {})
    except judging.ScorerConfigError as exc:
        raise ScoringFailed(str(exc)) from None
    agent = judge_agent(scorer)
    messages = judging.judge_messages(
        rubric=config["rubric"],
        title=clean(title or ""),
        description=clean(description or ""),
        output=clean(output or ""),
        expected=clean(expected or ""),
        notes=clean(notes or ""),
    )
    call = _call(agent, job, messages)
    try:
        value, reason = judging.parse(call.response)
    except judging.JudgeAnswerUnusable as exc:
        # Once more, told why: real judges mostly get it right the second time.
        call = _call(agent, job, judging.repair_messages(messages, call.response, str(exc)))
        try:
            value, reason = judging.parse(call.response)
        except judging.JudgeAnswerUnusable as again:
            raise ScoringFailed(f"the judge's answer is unusable: {again}") from None
    return value, reason, call


def _call(agent: Agent, job: Job, messages: list[dict]) -> LLMCall:
    """One judge call, tried again on a provider error that may pass."""
    failures = pauses = 0
    while True:
        try:
            return calls.call_llm(
                agent=agent,
                job_id=job.pk,
                purpose=LLMCall.Purpose.JUDGE,
                messages=messages,
                budgeted=False,
            )
        except llm.LLMError as exc:
            wait = lifecycle.next_attempt_in(
                exc, failures=failures, pauses=pauses, retries=JUDGE_RETRIES
            )
            if wait is None or pauses + failures >= JUDGE_RETRIES * 3:
                raise ScoringFailed(f"the judge's call failed: {exc}"[:ERROR_CHARS]) from None
            if exc.rate_limited:
                pauses += 1
            else:
                failures += 1
            time.sleep(min(wait, JUDGE_WAIT_MAX_S))


def _save(score: Score, scorer: Scorer, value: float, reason: str, call: LLMCall | None) -> Score:
    score.scorer = scorer
    score.scorer_name = clean(scorer.name)
    score.source = Score.Source.JUDGE if call is not None else Score.Source.CODE
    score.value = min(1.0, max(0.0, float(value)))
    score.passed = score.value >= scorer.threshold
    score.reason = clean(reason or "")[:REASON_CHARS]
    score.call = call
    try:
        with transaction.atomic():
            score.save()
            credit(score)
    except IntegrityError:
        # Another worker scored it first (its row stands; this call was paid for and is
        # in the trace, as any call is).
        found = _existing(job=score.job, scorer=scorer, subtask=score.subtask)
        if found is None:
            raise
        return found
    return score
