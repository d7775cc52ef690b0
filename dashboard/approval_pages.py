"""Approval pages: the steps awaiting an operator, the rules that pause them, and the
decisions (approve, edit and approve, reject with a reason). The rules of what may be
decided are agents.approvals'; these views read the form and show its answer."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agents import approvals
from agents.approvals import ApprovalError, InvalidDecision
from agents.jsonvalues import JSONInputError, load_json
from agents.models import Agent, Approval, ApprovalRule
from agents.text import UNSTORABLE

from .access import read_required

PENDING_SHOWN = 100
DECIDED_SHOWN = 20


class RuleForm(forms.Form):
    kind = forms.ChoiceField(choices=ApprovalRule.Kind.choices, label="Pause before")
    name = forms.CharField(
        max_length=ApprovalRule._meta.get_field("name").max_length,
        label="Named",
        help_text='A subtask type ("review"), or a tool as agents are granted it '
        '("write_state", "<server>/<tool>").',
    )


def decision_from(request: HttpRequest, approval: Approval) -> dict:
    """`approvals.decide`'s arguments from a posted form: action, and for an edit the last
    user message's new text (a step) or the tool's arguments as JSON (a tool call)."""
    action = request.POST.get("action", "")
    decision = {"action": action, "feedback": _text(request, "feedback")}
    if action == "edit":
        if approval.tool_call_id:
            try:
                decision["edited"] = load_json(request.POST.get("arguments", ""))
            except JSONInputError as exc:
                raise InvalidDecision(f"The arguments are not accepted: {exc}") from None
            except ValueError as exc:
                raise InvalidDecision(f"The arguments are not valid JSON: {exc}.") from None
        else:
            text = _text(request, "content")
            decision["edited"] = approvals.with_last_user_text(approval.proposed, text)
    return decision


def _text(request: HttpRequest, field: str) -> str:
    text = request.POST.get(field, "")
    if UNSTORABLE.search(text):
        raise InvalidDecision(f"The {field} holds a NUL character: remove it.", field)
    return text


def _back(request: HttpRequest, approval: Approval) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return redirect(target)
    return redirect(f"{approval.job.get_absolute_url()}#subtask-{approval.subtask_id}")


def _approval(approval_id: int) -> Approval:
    rows = Approval.objects.select_related("job", "subtask", "subtask__agent", "tool_call")
    return get_object_or_404(rows, pk=approval_id)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def decide(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = _approval(approval_id)
    error = ""
    try:
        approvals.decide(approval, request.user, **decision_from(request, approval))
    except ApprovalError as exc:
        error = str(exc)
    if request.htmx:
        # The panel again: decided, or with the reason it was not (htmx swaps 2xx only).
        context = {
            "approval": _approval(approval.pk),
            "can_operate": True,
            "error": error,
            "posted": request.POST,
            "next": request.POST.get("next", ""),
        }
        return render(request, "dashboard/_approval.html", context)
    if error:
        messages.error(request, f"Not decided: {error}")
    else:
        messages.success(request, f"{approval.subtask.key}: decided ({request.POST['action']}).")
    return _back(request, approval)


@read_required("job")
def approval_list(request: HttpRequest) -> HttpResponse:
    can_operate = request.user.has_perm("agents.change_job")
    decided = (
        Approval.objects.exclude(decision=Approval.Decision.PENDING)
        .select_related("job", "subtask", "tool_call", "decided_by")
        .defer("proposed", "edited", "job__description", "job__result", "job__error")
        .order_by("-decided_at", "-pk")[:DECIDED_SHOWN]
    )
    context = {
        "pending": list(approvals.pending()[:PENDING_SHOWN]),
        "decided": decided,
        "rules": ApprovalRule.objects.all(),
        "agents": Agent.objects.filter(needs_approval=True).only("name", "slug"),
        "rule_form": RuleForm() if can_operate else None,
        "can_operate": can_operate,
        "timeout_s": settings.APPROVAL_TIMEOUT_S,
        "timeout_action": settings.APPROVAL_TIMEOUT_ACTION,
    }
    return render(request, "dashboard/approvals.html", context)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def rule_add(request: HttpRequest) -> HttpResponse:
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            rule = approvals.add_rule(**form.cleaned_data, user=request.user)
        except ApprovalError as exc:
            messages.error(request, f"Not added: {exc}")
        else:
            messages.success(request, f"Added: {rule}.")
    else:
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"Not added: {errors}")
    return redirect("dash-approvals")


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(ApprovalRule, pk=rule_id)
    approvals.remove_rule(rule, user=request.user)
    messages.success(request, f"Removed: {rule}.")
    return redirect("dash-approvals")
