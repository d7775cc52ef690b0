"""Re-run from a step (the form that starts one) and two jobs compared side by side."""

from __future__ import annotations

import difflib

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from agents import rerun
from agents.forms import RerunForm
from agents.models import Job, Subtask

from .access import read_required

DIFF_LINES = 400  # a result past this many lines is compared by its first ones


def _rerun_page(request: HttpRequest, sub: Subtask, form: RerunForm, status: int = 200):
    copied, again = rerun.preview(sub)
    context = {
        "sub": sub,
        "form": form,
        "refusal": rerun.refusal(sub),
        "copied": copied,
        "again": again,
    }
    return render(request, "dashboard/rerun_form.html", context, status=status)


@login_required
@permission_required(("agents.add_job", "agents.change_job"), raise_exception=True)
def rerun_subtask(request: HttpRequest, subtask_id: int) -> HttpResponse:
    """GET: the form (the step's description and agent); POST: start the re-run, go to it."""
    rows = Subtask.objects.select_related("job", "agent").prefetch_related("depends_on")
    sub = get_object_or_404(rows, pk=subtask_id)
    if request.method != "POST":
        form = RerunForm(initial={"description": sub.description}, sub=sub)
        return _rerun_page(request, sub, form)
    form = RerunForm(request.POST, sub=sub)
    if not form.is_valid():
        return _rerun_page(request, sub, form, status=400)
    try:
        job = rerun.rerun_from(sub, request.user, **form.cleaned_data)
    except rerun.RerunRefused as refused:
        form.add_error(None, str(refused))
        return _rerun_page(request, sub, form, status=409)
    return redirect(job)


def line_diff(old: str, new: str) -> list[tuple[str, str]]:
    """(op, line) for each line of two texts: " " in both, "-" only in the old, "+" only
    in the new. Rendered with autoescaping: a result's markup stays text."""
    a, b = old.splitlines()[:DIFF_LINES], new.splitlines()[:DIFF_LINES]
    rows: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [(" ", line) for line in a[i1:i2]]
            continue
        rows += [("-", line) for line in a[i1:i2]]
        rows += [("+", line) for line in b[j1:j2]]
    return rows


def _steps(first: Job, second: Job) -> list[dict]:
    """Per subtask key, in the first job's plan order then the second's: both subtasks
    (None where a plan lacks the key) and the diff of their results."""
    subs = Subtask.objects.select_related("agent").order_by("pk")
    mine = {s.key: s for s in subs.filter(job=first)}
    theirs = {s.key: s for s in subs.filter(job=second)}
    rows = []
    for key in [*mine, *(k for k in theirs if k not in mine)]:
        a, b = mine.get(key), theirs.get(key)
        same = a is not None and b is not None and a.result == b.result
        diff = [] if same else line_diff(a.result if a else "", b.result if b else "")
        rows.append({"key": key, "sides": (a, b), "same": same, "diff": diff})
    return rows


@read_required("job")
def compare(request: HttpRequest, job_id: int, other_id: int) -> HttpResponse:
    first = get_object_or_404(Job, pk=job_id)
    second = get_object_or_404(Job, pk=other_id)
    context = {
        "first": first,
        "second": second,
        "steps": _steps(first, second),
        "final_same": first.result == second.result,
        "final_diff": line_diff(first.result, second.result),
    }
    return render(request, "dashboard/compare.html", context)
