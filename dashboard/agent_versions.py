"""An agent's versions page: its versions newest first with what each changed, any two
side by side, and restoring an old one (agents.actions.restore_agent_version)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agents import actions, versions
from agents.models import Agent, AgentVersion

from .access import read_required
from .reruns import line_diff

VERSIONS_PAGE = 25
LINE_DIFFED = ("system_prompt",)  # shown as a line diff, not as two values side by side


class VersionPairForm(forms.Form):
    """Two of an agent's versions to compare, by number."""

    a = forms.TypedChoiceField(label="From", coerce=int)
    b = forms.TypedChoiceField(label="To", coerce=int)

    def __init__(self, *args, numbers: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(n, f"v{n}") for n in numbers]
        self.fields["a"].choices = self.fields["b"].choices = choices


class VersionNoteForm(forms.Form):
    """The note an edit of the agent saves with the version it makes, if it makes one."""

    note = forms.CharField(
        label="Note for the new version",
        max_length=200,
        required=False,
        help_text="Kept with the version an edit of the model, prompt, specialties, tools, "
        "approval or generation settings makes: why it changed.",
    )


def _field_label(name: str) -> str:
    try:
        return str(Agent._meta.get_field(name).verbose_name).capitalize()
    except FieldDoesNotExist:  # a field an older version held and the agent no longer has
        return name.replace("_", " ").capitalize()


def _changes(older: AgentVersion | None, newer: AgentVersion) -> list[dict]:
    """What `newer` changed against `older`, one row a field: its label, both values, and
    for a long text its line diff."""
    if older is None:
        return []
    rows = []
    for name, before, after in versions.diff(older, newer):
        row = {"name": name, "label": _field_label(name), "before": before, "after": after}
        if name in LINE_DIFFED:
            row["lines"] = line_diff(str(before or ""), str(after or ""))
        rows.append(row)
    return rows


def _history(agent: Agent, page_number: str | None):
    """A page of the versions, newest first, each with its changes against the one before
    (one query more for the page's oldest's predecessor)."""
    rows = agent.versions.select_related("author").order_by("-number")
    page = Paginator(rows, VERSIONS_PAGE).get_page(page_number)
    shown = list(page.object_list)
    before = rows.filter(number__lt=shown[-1].number).first() if shown else None
    older = [*shown[1:], before]
    page.rows = [
        {"version": version, "prior": prior, "changes": _changes(prior, version)}
        for version, prior in zip(shown, older, strict=True)
    ]
    return page


def _compared(agent: Agent, form: VersionPairForm) -> dict | None:
    if not form.is_valid():
        return None
    a, b = form.cleaned_data["a"], form.cleaned_data["b"]
    pair = {v.number: v for v in agent.versions.filter(number__in=[a, b])}
    if a not in pair or b not in pair:  # removed since the form was drawn
        return None
    return {"a": pair[a], "b": pair[b], "changes": _changes(pair[a], pair[b])}


@read_required("agents")
def agent_versions(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the versions; with `a` and `b`, those two compared above them."""
    agent = get_object_or_404(Agent, slug=slug)
    numbers = list(agent.versions.order_by("-number").values_list("number", flat=True))
    asked = "a" in request.GET or "b" in request.GET
    if asked:
        form = VersionPairForm(request.GET, numbers=numbers)
    else:  # the current version against the one before it, ready to send
        previous = numbers[1] if len(numbers) > 1 else agent.version
        form = VersionPairForm(initial={"a": previous, "b": agent.version}, numbers=numbers)
    context = {
        "agent": agent,
        "page": _history(agent, request.GET.get("page")),
        "form": form,
        "compared": _compared(agent, form) if asked else None,
    }
    return render(request, "dashboard/agent_versions.html", context)


@login_required
@require_POST
@permission_required("agents.change_agent", raise_exception=True)
def agent_version_restore(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    agent = get_object_or_404(Agent, slug=slug)
    try:
        made = actions.restore_agent_version(agent, number, user=request.user)
    except AgentVersion.DoesNotExist:
        raise Http404(f"{agent.name} has no version {number}.") from None
    messages.success(request, f"Restored v{number} of {agent.name} as its new v{made.number}.")
    return redirect(reverse("dash-agent-versions", args=[agent.slug]))
