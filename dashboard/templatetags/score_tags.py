from django import template
from django.template.loader import render_to_string

from agents.models import ExperimentCase, Score

from ..experiments import RatingForm

register = template.Library()

JOB_SCORES_SHOWN = 50  # online scoring may score every step of a large plan: the newest ones


def job_score_rows(job) -> list[Score]:
    """The job's newest scores (one more than shown, to tell there are more), one query."""
    rows = Score.objects.filter(job=job).select_related("given_by", "subtask")
    return list(rows[: JOB_SCORES_SHOWN + 1])


def _experiment_case(job) -> ExperimentCase | None:
    """The experiment case the job ran, if any (one query: the reverse side is not loaded)."""
    return ExperimentCase.objects.filter(job=job).select_related("experiment").first()


@register.simple_tag(takes_context=True)
def job_scores(context, job) -> str:
    """The job's scores and, for those who may, a 1–5 rating form once the job has ended.

    Not part of the live fragments: an operator's page fetches itself when the job ends (its
    controls change), which draws the form; a viewer's shows the same whatever the status."""
    request = context.get("request")
    user = getattr(request, "user", None)
    scores = job_score_rows(job)
    more = len(scores) > JOB_SCORES_SHOWN
    scores = scores[:JOB_SCORES_SHOWN]
    can_rate = bool(user and user.has_perm("agents.add_score") and job.is_terminal)
    form = None
    if can_rate:
        mine = next((s for s in scores if s.source == "human" and s.given_by_id == user.pk), None)
        initial = {"rating": mine.rating, "comment": mine.reason} if mine else {}
        form = RatingForm(initial=initial, prefix="rate")
    case = _experiment_case(job)
    if not (scores or form or case):  # nothing to show: no empty section on every job page
        return ""
    return render_to_string(
        "dashboard/_job_scores.html",
        {"job": job, "scores": scores, "form": form, "case": case, "more": more},
        request=request,
    )
