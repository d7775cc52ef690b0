"""Scorer pages: list, create and edit. Read with the evaluation pages' permissions; a scorer
is made by add_scorer and edited by change_scorer (Operators), through agents.actions.scorers."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Avg, Count, Q
from django.forms import BoundField
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from agents.actions.scorers import ScorerNameTaken, create_scorer, edit_scorer
from agents.models import Scorer
from agents.scorer_forms import ScorerForm

from .access import read_required

# The form's fields in groups, each kind's settings under its own legend.
GROUPS = (
    ("Scorer", ("name", "kind", "threshold", "enabled")),
    ("LLM judge", ("rubric", "judge_model")),
    ("Exact match and contains", ("text", "case_sensitive")),
    ("Regular expression", ("pattern",)),
    ("Valid JSON", ("schema",)),
    ("Length bounds", ("min_length", "max_length")),
    ("Live work", ("online_type", "sample_rate")),
)


@dataclass
class FieldGroup:
    """What dashboard/_fields.html reads of a form: a legend's share of its fields."""

    legend: str
    visible_fields: list[BoundField]
    hidden_fields: list[BoundField] = field(default_factory=list)


def _groups(form: ScorerForm) -> list[FieldGroup]:
    return [FieldGroup(legend, [form[name] for name in names]) for legend, names in GROUPS]


def _scorers() -> list[Scorer]:
    scorers = list(
        Scorer.objects.annotate(
            n_scores=Count("scores"),
            mean=Avg("scores__value"),
            passed=Count("scores", filter=Q(scores__passed=True)),
        )
    )
    for scorer in scorers:
        scorer.summary = summary(scorer)
    return scorers


def summary(scorer: Scorer) -> str:
    """A scorer's settings in a line."""
    config = scorer.config or {}
    case = "case-sensitive" if config.get("case_sensitive") else "any case"
    if scorer.kind == Scorer.Kind.JUDGE:
        rubric = " ".join(str(config.get("rubric") or "correct, complete, helpful").split())
        rubric = rubric if len(rubric) <= 80 else rubric[:79] + "…"
        return f"{config.get('model') or 'default model'}: {rubric}"
    if scorer.kind == Scorer.Kind.EXACT:
        return f"equals the expected output, {case}"
    if scorer.kind == Scorer.Kind.CONTAINS:
        text = config.get("text") or "the expected output"
        return f"contains {text!s:.80}, {case}"
    if scorer.kind == Scorer.Kind.REGEX:
        return f"matches {config.get('pattern', '')}"
    if scorer.kind == Scorer.Kind.JSON_SCHEMA:
        return "JSON matching its schema"
    if scorer.kind == Scorer.Kind.LENGTH:
        low, high = config.get("min"), config.get("max")
        return f"{low if low is not None else 0} to {high if high is not None else '∞'} characters"
    return ""


def _list_page(request: HttpRequest, form: ScorerForm | None, status: int = 200) -> HttpResponse:
    context = {
        "scorers": _scorers(),
        "form": form,
        "groups": _groups(form) if form is not None else [],
    }
    return render(request, "dashboard/scorers.html", context, status=status)


@read_required("evaluation")
def scorer_list(request: HttpRequest) -> HttpResponse:
    form = ScorerForm() if request.user.has_perm("agents.add_scorer") else None
    return _list_page(request, form)


@login_required
@require_POST
@permission_required("agents.add_scorer", raise_exception=True)
def scorer_create(request: HttpRequest) -> HttpResponse:
    form = ScorerForm(request.POST)
    if form.is_valid():
        try:
            scorer = create_scorer(form.scorer_fields(), user=request.user)
        except ScorerNameTaken as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(request, f"Scorer {scorer.name} created.")
            return redirect("dash-scorers")
    return _list_page(request, form, status=400)


@login_required
@permission_required("agents.change_scorer", raise_exception=True)
def scorer_edit(request: HttpRequest, slug: str) -> HttpResponse:
    scorer = get_object_or_404(Scorer, slug=slug)
    form = ScorerForm(request.POST or None, instance=scorer)
    if request.method == "POST" and form.is_valid():
        try:
            changed = edit_scorer(scorer, form.scorer_fields(), user=request.user)
        except ScorerNameTaken as exc:
            form.add_error("name", str(exc))
        else:
            saved = f"saved ({', '.join(changed)})" if changed else "unchanged"
            messages.success(request, f"Scorer {form.cleaned_data['name']} {saved}.")
            return redirect("dash-scorers")
    status = 400 if request.method == "POST" else 200
    context = {"scorer": scorer, "form": form, "groups": _groups(form)}
    return render(request, "dashboard/scorer_edit.html", context, status=status)


urlpatterns: list = [
    path("scorers/", scorer_list, name="dash-scorers"),
    path("scorers/new/", scorer_create, name="dash-scorer-create"),
    path("scorers/<slug:slug>/edit/", scorer_edit, name="dash-scorer-edit"),
]
