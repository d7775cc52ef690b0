"""Bulk actions: cancel, retry or re-run every job a filter selects (the board's filters, a
time range and a tag), after a preview of how many and which.

The preview (a GET) lists what matches and what the action would skip; the confirmation (a
POST) carries the previewed ids, at most BULK_MAX_JOBS, so what is acted on is what was
previewed. agents.actions.bulk.bulk_act checks each job again when it acts: one that changed
meanwhile is skipped with its reason. Operators only (change_job; a re-run also add_job).
"""

from __future__ import annotations

from collections import Counter

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import urlencode

from agents import bulk
from agents.actions.bulk import bulk_act
from agents.bulk_forms import ACTION_CHOICES, BulkFilterForm
from agents.forms import BoardFilterForm
from agents.models import Job

DONE = {"cancel": "Cancelled", "retry": "Retried", "rerun": "Re-ran"}
EXPLAINED = {
    "cancel": "Queued and running jobs stop: running calls finish, nothing new starts.",
    "retry": "Failed and cancelled jobs resume from where they stopped, at their priority.",
    "rerun": "Each finished job is submitted again as a new job with the same input.",
}
# Room for BULK_MAX_JOBS ids of up to 12 digits and their commas.
ID_CHARS = 13


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=ACTION_CHOICES, widget=forms.RadioSelect)


class ConfirmForm(ActionForm):
    ids = forms.CharField(widget=forms.HiddenInput)

    def clean_ids(self) -> list[int]:
        text = self.cleaned_data["ids"]
        if len(text) > settings.BULK_MAX_JOBS * ID_CHARS:
            raise forms.ValidationError(f"At most {settings.BULK_MAX_JOBS} jobs at once.")
        try:
            ids = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("The jobs previewed were not sent back whole.") from None
        if not ids:
            raise forms.ValidationError("No jobs to act on.")
        if len(ids) > settings.BULK_MAX_JOBS:
            raise forms.ValidationError(f"At most {settings.BULK_MAX_JOBS} jobs at once.")
        return ids


def _check(request: HttpRequest, action: str | None) -> None:
    if action == "rerun" and not request.user.has_perm("agents.add_job"):
        raise PermissionDenied("A re-run submits jobs: your roles do not allow that.")


def _board_filter(data) -> dict:
    """The board's own filters of `data` that are set: carried back to the board."""
    filters = BoardFilterForm(data)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    return {name: value for name, value in chosen.items() if value not in ("", None)}


@login_required
@permission_required("agents.change_job", raise_exception=True)
def bulk_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _confirm(request)
    filters = BulkFilterForm(request.GET or None)
    choice = ActionForm(request.GET if "action" in request.GET else None)
    carried = _board_filter(request.GET)
    context: dict = {
        "filters": filters,
        "choice": choice,
        "board_filter": carried,
        "board_query": urlencode(carried),
        "limit": settings.BULK_MAX_JOBS,
        "explained": EXPLAINED,
    }
    if choice.is_bound and choice.is_valid() and filters.is_valid():
        action = choice.cleaned_data["action"]
        _check(request, action)
        jobs = bulk.select(**filters.cleaned_data)
        shown = bulk.preview(jobs, action)
        context.update(preview=shown, action=action, action_label=dict(ACTION_CHOICES)[action])
        if shown.count <= settings.BULK_MAX_JOBS and shown.eligible:
            ids = jobs.order_by("-pk").values_list("pk", flat=True)[: settings.BULK_MAX_JOBS]
            context["confirm"] = ConfirmForm(
                initial={"action": action, "ids": ",".join(str(pk) for pk in ids)}
            )
    status = 400 if filters.is_bound and (filters.errors or choice.errors) else 200
    return render(request, "dashboard/bulk.html", context, status=status)


def _confirm(request: HttpRequest) -> HttpResponse:
    form = ConfirmForm(request.POST)
    back = reverse("dash-board")
    if query := urlencode(_board_filter(request.POST)):
        back += f"?{query}"
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"Nothing was done: {error}")
        return redirect(reverse("dash-bulk") + (f"?{query}" if query else ""))
    action = form.cleaned_data["action"]
    _check(request, action)
    jobs = Job.objects.filter(pk__in=form.cleaned_data["ids"])
    result = bulk_act(action, jobs, user=request.user)
    applied, skipped = len(result.applied), len(result.skipped)
    text = f"{DONE[action]} {applied} job{'' if applied == 1 else 's'}"
    if skipped:
        reasons = Counter(result.skipped.values()).most_common(5)
        why = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        text += f"; skipped {skipped}: {why}"
    if result.created:
        text += f"; the new jobs are {bulk.id_ranges(result.created)}"
    (messages.success if applied else messages.info)(request, text + ".")
    return redirect(back)


urlpatterns: list = [
    path("jobs/bulk/", bulk_page, name="dash-bulk"),
]
