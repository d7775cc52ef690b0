"""Experiment pages: new, live progress, compare, export, and the annotation queue; and a
person's 1–5 rating of a job (agents.actions.scores.rate)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from agents import experiment_forms, experiment_reports, versions
from agents.actions import experiments as experiment_actions
from agents.actions import scores as score_actions
from agents.models import (
    JOB_TERMINAL,
    Agent,
    AgentVersion,
    Experiment,
    ExperimentCase,
    Job,
    LLMCall,
    Score,
)

from .access import read_required
from .reruns import line_diff

EXPERIMENTS_PAGE = 25
PIN = "pin-"  # the page form's per-agent version selects: pin-<slug>
PAIR_CHOICES = 200  # the compare form offers the newest ones; any pair has its own URL
CASES_PAGE = 50  # a dataset may hold thousands: the page and each poll draw one page of them
FAILURES_SHOWN = 50
POLL_S = 3  # the live region of a running experiment fetches itself this often
LIVE_TARGET = "experiment-live"


class RatingForm(forms.Form):
    """A person's rating of a job's output, 1 (bad) to 5 (excellent), and why."""

    rating = forms.TypedChoiceField(
        label="Rating",
        choices=[(n, str(n)) for n in score_actions.RATINGS],
        coerce=int,
        widget=forms.RadioSelect,
        help_text="1 is unusable, 5 is excellent.",
    )
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=score_actions.COMMENT_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ExperimentPageForm(experiment_forms.ExperimentForm):
    """The shared ExperimentForm, its agent versions chosen on the page with one select per
    enabled agent (its versions, "current" first) rather than typed as agent@version."""

    def __init__(self, data=None, *args, **kwargs) -> None:
        self.agents = list(Agent.objects.filter(enabled=True).order_by("name"))
        if data is not None:  # the selects, written as the shared form's versions
            data = data.copy()
            picked = ((a.slug, data.get(PIN + a.slug, "")) for a in self.agents)
            data["versions"] = ", ".join(f"{slug}@{n}" for slug, n in picked if n)
        super().__init__(data, *args, **kwargs)
        self.fields["versions"].widget = forms.HiddenInput()
        kept: dict[int, list[int]] = {}
        numbers = AgentVersion.objects.filter(agent__in=self.agents).order_by("-number")
        for agent_id, number in numbers.values_list("agent_id", "number"):
            kept.setdefault(agent_id, []).append(number)
        for agent in self.agents:
            choices = [("", f"current (v{agent.version})")]
            choices += [(str(n), versions.label(agent.name, n)) for n in kept.get(agent.pk, [])]
            self.fields[PIN + agent.slug] = forms.ChoiceField(
                label=f"{agent.name}: version", choices=choices, required=False
            )
        self.order_fields(["name", "dataset", "scorers", *(PIN + a.slug for a in self.agents)])

    def action_fields(self) -> dict:
        """What agents.actions.experiments.start_experiment takes."""
        return {k: v for k, v in self.cleaned_data.items() if not k.startswith(PIN)}


class ComparePairForm(forms.Form):
    """Two experiments to compare, by id."""

    a = forms.TypedChoiceField(label="Experiment A", coerce=int)
    b = forms.TypedChoiceField(label="Experiment B", coerce=int)

    def __init__(self, *args, choices: list[tuple[int, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["a"].choices = self.fields["b"].choices = choices


def _get_experiment(experiment_id: int) -> Experiment:
    rows = Experiment.objects.select_related("created_by", "dataset")
    return get_object_or_404(rows, pk=experiment_id)


def _agent_names(slugs) -> dict[str, str]:
    return dict(Agent.objects.filter(slug__in=list(slugs)).values_list("slug", "name"))


def _versions(experiment: Experiment) -> list[dict]:
    """The versions its cases ran with, as "Reviewer v2", those it chose marked; an agent
    none of its steps ran yet is left out (it runs its current version when one does)."""
    chosen = experiment.agent_versions or {}
    ran = experiment_reports.ran_versions(experiment)
    names = _agent_names(ran)
    return [
        {"label": versions.label(names.get(slug, slug), number), "chosen": slug in chosen}
        for slug, number in sorted(ran.items(), key=lambda item: names.get(item[0], item[0]))
    ]


def _listed(page_number: str | None):
    """A page of experiments with their progress and cost, in one query."""
    ended = Q(cases__job__status__in=JOB_TERMINAL)
    rows = Experiment.objects.select_related("created_by").order_by("-created_at", "-id")
    rows = rows.annotate(
        total=Count("cases"),
        done=Count("cases", filter=ended),
        cost=Sum("cases__job__total_cost"),
    )
    return Paginator(rows, EXPERIMENTS_PAGE).get_page(page_number)


def _pair_choices() -> list[tuple[int, str]]:
    """The newest experiments, newest first."""
    rows = Experiment.objects.values_list("pk", "name")[:PAIR_CHOICES]
    return [(pk, f"#{pk} {name}") for pk, name in rows]


def _list_page(request: HttpRequest, form: forms.Form | None, status: int = 200):
    choices = _pair_choices()
    # The newest run against the one before it, ready to send.
    initial = {"a": choices[1][0], "b": choices[0][0]} if len(choices) > 1 else {}
    context = {
        "page": _listed(request.GET.get("page")),
        "form": form,
        "pair": ComparePairForm(initial=initial, choices=choices),
    }
    return render(request, "dashboard/experiments.html", context, status=status)


@read_required("evaluation")
def experiment_list(request: HttpRequest) -> HttpResponse:
    may_start = request.user.has_perm("agents.add_experiment")
    form = ExperimentPageForm() if may_start else None
    return _list_page(request, form)


@login_required
@require_POST
@permission_required("agents.add_experiment", raise_exception=True)
def experiment_start(request: HttpRequest) -> HttpResponse:
    form = ExperimentPageForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        experiment = experiment_actions.start_experiment(user=request.user, **form.action_fields())
    except experiment_actions.ExperimentRefused as refused:
        form.add_error(None, str(refused))
        return _list_page(request, form, status=409)
    return redirect(experiment)


def _case_rows(summary: dict) -> list[dict]:
    """Each case with its scores in the order of the scorers' columns."""
    names = [row["name"] for row in summary["scorers"]]
    return [
        {**row, "cells": [row["scores"].get(name) for name in names]} for row in summary["cases"]
    ]


@read_required("evaluation")
def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """The page, or (asked by its own live region) that region alone."""
    experiment = _get_experiment(experiment_id)
    summary = experiment_reports.summary(experiment)
    cases = Paginator(_case_rows(summary), CASES_PAGE).get_page(request.GET.get("page"))
    context = {
        "experiment": experiment,
        "summary": summary,
        "cases": cases,
        "failures": summary["failures"][:FAILURES_SHOWN],
        "poll_s": POLL_S,
    }
    if request.htmx and request.htmx.target == LIVE_TARGET:
        return render(request, f"dashboard/experiment_detail.html#{LIVE_TARGET}", context)
    context["versions"] = _versions(experiment)
    return render(request, "dashboard/experiment_detail.html", context)


@login_required
@require_POST
@permission_required("agents.change_experiment", raise_exception=True)
def experiment_cancel(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _get_experiment(experiment_id)
    if experiment_actions.cancel_experiment(experiment, user=request.user):
        messages.success(request, f"Cancelled {experiment.name}: running cases are cancelled.")
    else:
        messages.info(request, f"{experiment.name} has already ended.")
    return redirect(experiment)


def _attachment(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@read_required("evaluation")
def export_csv(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """One row per case; a text that a spreadsheet would run as a formula starts with '."""
    experiment = _get_experiment(experiment_id)
    body = experiment_reports.export_csv(experiment_reports.export_rows(experiment))
    return _attachment(body, "text/csv; charset=utf-8", f"experiment-{experiment.pk}.csv")


@read_required("evaluation")
def export_jsonl(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _get_experiment(experiment_id)
    body = experiment_reports.export_jsonl(experiment_reports.export_rows(experiment))
    filename = f"experiment-{experiment.pk}.jsonl"
    return _attachment(body, "application/jsonl; charset=utf-8", filename)


@read_required("evaluation")
def compare_pick(request: HttpRequest) -> HttpResponse:
    """The list page's pair form: to the two experiments compared."""
    form = ComparePairForm(request.GET, choices=_pair_choices())
    if not form.is_valid():
        messages.error(request, "Pick two experiments to compare.")
        return redirect("dash-experiments")
    return redirect("dash-experiment-compare", form.cleaned_data["a"], form.cleaned_data["b"])


def _version_rows(rows: list[dict]) -> list[dict]:
    names = _agent_names(row["agent"] for row in rows)

    def named(slug: str, number: int | None) -> str:
        name = names.get(slug, slug)
        return versions.label(name, number) if number is not None else f"{name} (current)"

    return [{"a": named(r["agent"], r["a"]), "b": named(r["agent"], r["b"])} for r in rows]


def _compared_cases(rows: list[dict], names: list[str]) -> list[dict]:
    """Each pair of cases with both outputs, their line diff and the scores by column."""
    out = []
    for row in rows:
        job_a = row["a"].job if row["a"] else None
        job_b = row["b"].job if row["b"] else None
        text_a, text_b = (job_a.result if job_a else ""), (job_b.result if job_b else "")
        scores = [(name, row["scores_a"].get(name), row["scores_b"].get(name)) for name in names]
        same = text_a == text_b
        diff = [] if same else line_diff(text_a, text_b)
        out.append({**row, "jobs": (job_a, job_b), "same": same, "diff": diff, "scores": scores})
    return out


@read_required("evaluation")
def compare(request: HttpRequest, a: int, b: int) -> HttpResponse:
    first, second = _get_experiment(a), _get_experiment(b)
    result = experiment_reports.compare(first, second)
    names = [row["name"] for row in result["scorers"]]
    page = Paginator(result["cases"], CASES_PAGE).get_page(request.GET.get("page"))
    context = {
        "a": first,
        "b": second,
        "scorers": result["scorers"],
        "versions": _version_rows(result["versions"]),
        "page": page,
        "cases": _compared_cases(page.object_list, names),
    }
    return render(request, "dashboard/experiment_compare.html", context)


def _rated_form(request: HttpRequest) -> RatingForm:
    return RatingForm(request.POST, prefix="rate")


@login_required
@require_POST
@permission_required("agents.add_score", raise_exception=True)
def job_rate(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job page's rating form: saved (replacing this person's earlier rating), and back."""
    job = get_object_or_404(Job, pk=job_id)
    form = _rated_form(request)
    if not form.is_valid():
        messages.error(request, "Not rated: choose a rating from 1 to 5.")
        return redirect(job)
    try:
        score_actions.rate(job, request.user, **form.cleaned_data)
    except score_actions.RatingRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Rated job #{job.pk} {form.cleaned_data['rating']}/5.")
    return redirect(job)


def _queue(experiment: Experiment, user) -> QuerySet[ExperimentCase]:
    """The experiment's cases whose jobs ended and that `user` has not rated, in order."""
    rated = Score.objects.filter(source=Score.Source.HUMAN, given_by=user).values("job_id")
    return (
        experiment.cases.filter(job__status__in=JOB_TERMINAL)
        .exclude(job_id__in=rated)
        .select_related("job")
        .order_by("position")
    )


def _automatic_scores(job: Job) -> QuerySet[Score]:
    return Score.objects.filter(job=job, subtask__isnull=True).exclude(source=Score.Source.HUMAN)


@read_required("evaluation")
def annotate(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """GET: the next case to rate after `?after=<position>`; POST: rate it, then the next."""
    experiment = _get_experiment(experiment_id)
    can_rate = request.user.has_perm("agents.add_score")
    queue = _queue(experiment, request.user)
    form = RatingForm(prefix="rate")
    status = 200
    if request.method == "POST":
        if not can_rate:
            raise PermissionDenied("Rating needs the permission to add scores.")
        ended = experiment.cases.filter(job__status__in=JOB_TERMINAL).select_related("job")
        chosen = request.POST.get("case", "")
        case = get_object_or_404(ended, pk=int(chosen) if chosen.isdigit() else 0)
        form = _rated_form(request)
        if form.is_valid():
            score_actions.rate(case.job, request.user, **form.cleaned_data)
            url = reverse("dash-experiment-annotate", args=[experiment.pk])
            return redirect(f"{url}?after={case.position}")
        status = 400
    else:
        after = request.GET.get("after", "")
        case = queue.filter(position__gt=int(after)).first() if after.isdigit() else queue.first()
    context = {
        "experiment": experiment,
        "case": case,
        "left": queue.count(),
        "form": form if can_rate else None,
        "scores": _automatic_scores(case.job) if case else [],
    }
    return render(request, "dashboard/annotate.html", context, status=status)


@read_required("job")
def score_call(request: HttpRequest, score_id: int) -> HttpResponse:
    """The judge's own model call behind a score: what it was asked and what it answered."""
    score = get_object_or_404(Score.objects.select_related("job"), pk=score_id)
    if score.call_id is None:
        raise Http404("This score was not given by a model call.")
    call = get_object_or_404(LLMCall, pk=score.call_id)
    return render(request, "dashboard/experiment_judge_call.html", {"score": score, "call": call})


urlpatterns = [
    path("experiments/", experiment_list, name="dash-experiments"),
    path("experiments/new/", experiment_start, name="dash-experiment-start"),
    path("experiments/compare/", compare_pick, name="dash-experiment-compare-pick"),
    path("experiments/<int:experiment_id>/", experiment_detail, name="dash-experiment"),
    path(
        "experiments/<int:experiment_id>/cancel/", experiment_cancel, name="dash-experiment-cancel"
    ),
    path("experiments/<int:experiment_id>/export.csv", export_csv, name="dash-experiment-csv"),
    path(
        "experiments/<int:experiment_id>/export.jsonl", export_jsonl, name="dash-experiment-jsonl"
    ),
    path("experiments/<int:a>/compare/<int:b>/", compare, name="dash-experiment-compare"),
    path("experiments/<int:experiment_id>/annotate/", annotate, name="dash-experiment-annotate"),
    path("jobs/<int:job_id>/rate/", job_rate, name="dash-job-rate"),
    path("scores/<int:score_id>/call/", score_call, name="dash-score-call"),
]
