"""Human approval of a step: a subtask's model call, or one tool call, waits for an operator.

A subtask needs approval when its agent is marked (`Agent.needs_approval`) or an
`ApprovalRule` names its type; a tool call, when a rule names the tool. The run then asks
(`request`): the subtask moves from working to awaiting approval, giving up its lease, its
worker thread and its limiter slot, and an `Approval` holds exactly what would be sent. An
operator decides (`decide`): approve, edit and approve, or reject with a reason; the subtask
is then queued again for its agent, and its next run goes on from the decision (`gate` for a
model call; the tool loop reads its `ToolCall`'s status). A rejected model call goes back to
the agent with the operator's reason as feedback, and is proposed again.

With APPROVAL_TIMEOUT_S, the reconciler takes APPROVAL_TIMEOUT_ACTION for approvals nobody
decided in time (`expire`). Every decision is audited.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import enqueue, events, lifecycle, planning
from .audit import audit
from .models import (
    Approval,
    ApprovalRule,
    JobStatus,
    Subtask,
    SubtaskStatus,
    ToolCall,
)

log = logging.getLogger(__name__)

ACTIONS = {
    "approve": Approval.Decision.APPROVED,
    "edit": Approval.Decision.EDITED,
    "reject": Approval.Decision.REJECTED,
}
REJECTED_STEP = "An operator rejected this step as proposed: {feedback}"
REJECTED_TOOL = "An operator rejected this tool call: {feedback}"
TIMED_OUT_TOOL = "This tool call was not approved within {seconds:g} s: it did not run."
EXPIRE_BATCH = 100
FEEDBACK_CHARS = Approval._meta.get_field("feedback").max_length
# A tool call may be asked about while requested, or again while still awaiting.
ASKABLE = (ToolCall.Status.REQUESTED, ToolCall.Status.AWAITING_APPROVAL)
RULE_NAME_CHARS = ApprovalRule._meta.get_field("name").max_length


class ApprovalError(Exception):
    """A decision that cannot be taken now: already decided, or the step moved on."""


class InvalidDecision(ApprovalError):
    """A decision whose input is wrong (`field` names which): nothing was changed."""

    def __init__(self, message: str, field: str = "action") -> None:
        super().__init__(message)
        self.field = field


class _RuleCache:
    """Rules change rarely (an operator's page, admin): read at most every few seconds per
    process, so a step with none pays no query for them."""

    ttl_s = 5.0

    def __init__(self) -> None:
        self._rules: dict[str, frozenset[str]] = {}
        self._read_at = float("-inf")

    def get(self) -> dict[str, frozenset[str]]:
        now = time.monotonic()
        if now - self._read_at > self.ttl_s:
            names: dict[str, set[str]] = {kind: set() for kind in ApprovalRule.Kind.values}
            for kind, name in ApprovalRule.objects.values_list("kind", "name"):
                names[kind].add(name)
            self._rules = {kind: frozenset(found) for kind, found in names.items()}
            self._read_at = now
        return self._rules

    def forget(self) -> None:
        """A rule changed in this process: it applies here at once, and again on commit."""
        self._read_at = float("-inf")
        transaction.on_commit(self._forget_now)

    def _forget_now(self) -> None:
        self._read_at = float("-inf")


_rules = _RuleCache()


def subtask_needs_approval(sub: Subtask) -> str | None:
    """Why `sub`'s model call waits for an operator (its agent, or a rule on its type), or
    None. Reads only the loaded agent and the cached rules."""
    agent = sub.agent
    if agent is not None and agent.needs_approval:
        return f"agent {agent.slug} needs approval"
    if sub.type in _rules.get().get(ApprovalRule.Kind.TYPE, ()):
        return f"subtask type {sub.type} needs approval"
    return None


def tool_needs_approval(grant_name: str) -> str | None:
    """Why a call of the tool granted as `grant_name` waits for an operator, or None."""
    if grant_name in _rules.get().get(ApprovalRule.Kind.TOOL, ()):
        return f"tool {grant_name} needs approval"
    return None


def feedback_message(feedback: str) -> dict:
    return {"role": "user", "content": REJECTED_STEP.format(feedback=feedback)}


def gate(sub: Subtask, messages: list[dict]) -> list[dict] | None:
    """The messages a claimed (working) subtask's first model call sends, or None when the
    subtask now waits for an operator (it was moved to awaiting approval: stop the run).

    Without approval needed, `messages` as they are. Otherwise the newest decision on the
    subtask's model call says: approved, what was approved; edited, the edited messages;
    rejected, what was rejected with the operator's reason after it, proposed again (the
    reasons of successive rejections add up); nothing asked yet, ask.
    """
    why = subtask_needs_approval(sub)
    if why is None:
        return messages
    newest = sub.approvals.filter(tool_call__isnull=True).order_by("-pk").first()
    if newest is None:
        request(sub, proposed=messages, why=why)
        return None
    if newest.decision == Approval.Decision.APPROVED:
        return newest.proposed
    if newest.decision == Approval.Decision.EDITED:
        return newest.edited
    if newest.decision == Approval.Decision.REJECTED:
        proposed = list(newest.proposed)
        if not newest.timed_out:  # a timeout gives no reason: the same proposal again
            proposed.append(feedback_message(newest.feedback))
        request(sub, proposed=proposed, why=why)
        return None
    # Still pending: asked before the subtask was cancelled, and now run again. The same
    # question is asked again.
    _await(sub, newest)
    return None


def _expires_at():
    timeout = settings.APPROVAL_TIMEOUT_S
    return timezone.now() + timedelta(seconds=timeout) if timeout else None


def _pause(sub: Subtask) -> bool:
    """Working → awaiting approval, by the attempt that runs it; the lease is given up (the
    reconciler leaves an awaiting subtask alone)."""
    return sub.transition(
        SubtaskStatus.WORKING,
        SubtaskStatus.AWAITING_APPROVAL,
        attempt=sub.attempts,
        lease_owner="",
        lease_expires_at=None,
    )


def _await(sub: Subtask, approval: Approval) -> bool:
    with transaction.atomic():
        if not _pause(sub):
            return False
        Approval.objects.filter(pk=approval.pk).update(expires_at=_expires_at())
        if approval.tool_call_id:
            _await_tool_call(ToolCall(pk=approval.tool_call_id))
        events.job_changed(sub.job_id)  # the count of steps awaiting approval (board, header)
    return True


def request(
    sub: Subtask, *, proposed: list | dict, why: str, tool_call: ToolCall | None = None
) -> Approval | None:
    """Pause the working subtask `sub` until an operator decides on `proposed` (a model
    call's messages, or a tool call's arguments); None if the attempt lost the subtask.

    A tool call is asked about once: one already decided raises ApprovalError (the tool
    loop reads its status first); one still pending is asked again as it was.
    """
    if tool_call is not None:
        asked = Approval.objects.filter(tool_call=tool_call).first()
        if asked is not None:
            if not asked.pending:
                raise ApprovalError(f"Tool call {tool_call.pk} was already {asked.decision}.")
            return asked if _await(sub, asked) else None
    with transaction.atomic():
        if not _pause(sub):
            return None
        if tool_call is not None:
            _await_tool_call(tool_call)
        approval = Approval.objects.create(
            job_id=sub.job_id,
            subtask=sub,
            tool_call=tool_call,
            why=why[:200],
            proposed=proposed,
            expires_at=_expires_at(),
        )
        events.job_changed(sub.job_id)
    return approval


def _await_tool_call(tool_call: ToolCall) -> None:
    """The tool call awaits the operator with its subtask; one that moved on (it ran, or was
    decided) is not asked about: ApprovalError, and the pause is rolled back."""
    if not tool_call.transition(ASKABLE, ToolCall.Status.AWAITING_APPROVAL):
        raise ApprovalError(f"Tool call {tool_call.pk} moved on: it is not asked about.")


def last_user_text(messages: list) -> str:
    """The content of the last user message (what an operator edits), or ""."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def with_last_user_text(messages: list, text: str) -> list[dict]:
    """`messages` with the last user message's content replaced by `text`."""
    edited = [dict(m) for m in messages]
    for message in reversed(edited):
        if message.get("role") == "user":
            message["content"] = text
            return edited
    return [*edited, {"role": "user", "content": text}]


def tool_arguments(approval: Approval) -> dict:
    """The arguments a tool call approval shows: those proposed, as an object."""
    proposed = approval.proposed
    if isinstance(proposed, dict):
        return proposed
    if approval.tool_call is not None:
        try:
            parsed = json.loads(approval.tool_call.arguments or "{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _checked_edit(approval: Approval, edited: object) -> object:
    if approval.tool_call_id:
        if not isinstance(edited, dict):
            raise InvalidDecision(
                'Give the tool\'s arguments as a JSON object, e.g. {"key": 1}.', "edited"
            )
        return edited
    if not isinstance(edited, list) or not edited:
        raise InvalidDecision("Give the messages to send as a non-empty list.", "edited")
    for message in edited:
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise InvalidDecision('Each message needs a "role" and a text "content".', "edited")
    if not last_user_text(edited).strip():
        raise InvalidDecision("The message to send cannot be empty.", "edited")
    return edited


def decide(
    approval: Approval,
    user,
    action: str,
    *,
    edited: object = None,
    feedback: str = "",
) -> Approval:
    """An operator's decision: `action` approve, edit (with `edited`: the messages, or the
    tool's arguments as an object) or reject (with `feedback`, the reason the agent gets).

    Audited; the subtask is queued again for its agent. Raises ApprovalError, changing
    nothing, for an approval that can no longer be decided (InvalidDecision: bad input).
    """
    if action not in ACTIONS:
        raise InvalidDecision(f"Choose approve, edit or reject, not {action!r}.", "action")
    feedback = (feedback or "").strip()
    if action == "reject" and not feedback:
        raise InvalidDecision("Give a reason for rejecting: it goes back to the agent.", "feedback")
    if len(feedback) > FEEDBACK_CHARS:
        raise InvalidDecision(f"Keep the reason to {FEEDBACK_CHARS} characters.", "feedback")
    if action == "edit":
        edited = _checked_edit(approval, edited)
    else:
        edited = None
    return _decide(approval, user, action, edited=edited, feedback=feedback)


def _decide(
    approval: Approval,
    user,
    action: str,
    *,
    edited: object = None,
    feedback: str = "",
    timed_out: bool = False,
) -> Approval:
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Approval.objects.select_for_update(of=("self",))
            .select_related("subtask", "job", "tool_call")
            .filter(pk=approval.pk)
            .first()
        )
        if locked is None:
            raise ApprovalError("This approval no longer exists.")
        sub = locked.subtask
        if not locked.pending:
            by = "the timeout" if locked.timed_out else locked.decided_by
            raise ApprovalError(
                f"This step was already decided: {locked.get_decision_display().lower()}"
                f"{f' by {by}' if by else ''}."
            )
        if sub.status != SubtaskStatus.AWAITING_APPROVAL:
            raise ApprovalError(
                f"Subtask {sub.key} is {sub.get_status_display().lower()}: "
                "its approval can no longer be decided."
            )
        if locked.job.status != JobStatus.WORKING:
            raise ApprovalError(
                f"Job #{locked.job_id} is {locked.job.get_status_display().lower()}: "
                "decide once it is working again."
            )
        failing = timed_out and action == "reject" and locked.tool_call_id is None
        if failing:
            # Rejected by the clock: no reason to give the agent, so the step fails rather
            # than being proposed again (and timing out again) forever. A retry asks again.
            error = f"Not approved within {settings.APPROVAL_TIMEOUT_S:g} s: rejected."
            moved = sub.transition(
                SubtaskStatus.AWAITING_APPROVAL, SubtaskStatus.FAILED, error=error
            )
        else:
            moved = sub.transition(
                SubtaskStatus.AWAITING_APPROVAL, SubtaskStatus.QUEUED, next_attempt_at=None
            )
        if not moved:
            raise ApprovalError(
                f"Subtask {sub.key} moved on: its approval can no longer be decided."
            )
        locked.decision = ACTIONS[action]
        locked.edited = edited
        locked.feedback = feedback
        locked.decided_by = user
        locked.decided_at = now
        locked.timed_out = timed_out
        locked.save(
            update_fields=[
                "decision",
                "edited",
                "feedback",
                "decided_by",
                "decided_at",
                "timed_out",
            ]
        )
        if locked.tool_call_id:
            reason = REJECTED_TOOL.format(feedback=feedback)
            if timed_out:
                reason = TIMED_OUT_TOOL.format(seconds=settings.APPROVAL_TIMEOUT_S)
            _decide_tool_call(locked.tool_call, action, edited, reason)
        audit(
            f"approval.{action}",
            actor=user,
            job=locked.job,
            subtask=sub,
            detail=_audit_detail(locked, timed_out),
        )
        events.job_changed(locked.job_id)
        if failing:
            transaction.on_commit(lambda: lifecycle.settle_job_locked(locked.job_id))
        else:
            enqueue.run_subtask(sub.pk)
    return locked


def _decide_tool_call(tool_call: ToolCall, action: str, edited: object, reason: str) -> None:
    """The tool call approved (with its edited arguments), or rejected: `reason` is then the
    error the model reads as the call's result. A call that is no longer awaiting (it ran
    meanwhile) keeps its own outcome: the subtask goes on from it."""
    awaiting = ToolCall.Status.AWAITING_APPROVAL
    if action == "reject":
        tool_call.transition(awaiting, ToolCall.Status.REJECTED, error=reason)
    elif action == "edit":
        tool_call.transition(awaiting, ToolCall.Status.APPROVED, arguments=json.dumps(edited))
    else:
        tool_call.transition(awaiting, ToolCall.Status.APPROVED)


def _audit_detail(approval: Approval, timed_out: bool) -> str:
    what = f"tool {approval.tool_call.name}" if approval.tool_call_id else "model call"
    parts = [what]
    if timed_out:
        parts.append(f"timed out after {settings.APPROVAL_TIMEOUT_S:g} s")
    if approval.feedback:
        parts.append(approval.feedback)
    return ": ".join(parts)


def expire(now=None) -> int:
    """Take the default action (APPROVAL_TIMEOUT_ACTION) on approvals past their time, as
    the system; the reconciler calls this. Returns how many were decided."""
    now = now or timezone.now()
    due = Approval.objects.filter(
        decision=Approval.Decision.PENDING,
        expires_at__lte=now,
        subtask__status=SubtaskStatus.AWAITING_APPROVAL,
        job__status=JobStatus.WORKING,
    ).order_by("expires_at", "pk")
    action = settings.APPROVAL_TIMEOUT_ACTION
    decided = 0
    for approval in due[:EXPIRE_BATCH]:
        try:
            _decide(approval, None, action, timed_out=True)
        except ApprovalError:  # decided or moved on meanwhile
            continue
        decided += 1
    if decided:
        log.info("approvals timed out: %d, %sed", decided, action)
    return decided


def pending() -> QuerySet[Approval]:
    """Approvals an operator can decide now, newest first."""
    return (
        Approval.objects.filter(
            decision=Approval.Decision.PENDING,
            subtask__status=SubtaskStatus.AWAITING_APPROVAL,
        )
        .select_related("job", "subtask", "subtask__agent", "tool_call")
        .order_by("-created_at", "-pk")
    )


def add_rule(kind: str, name: str, *, user=None) -> ApprovalRule:
    """A subtask type (named as plans name types) or a tool (as agents are granted it:
    "read_state", "<server slug>/<tool>") that needs approval from now on."""
    if kind not in ApprovalRule.Kind.values:
        raise InvalidDecision(f"A rule is for a subtask type or a tool, not {kind!r}.", "kind")
    name = planning.normalise_type(name) if kind == ApprovalRule.Kind.TYPE else name.strip()
    if not name:
        raise InvalidDecision("Name the subtask type or the tool.", "name")
    if len(name) > RULE_NAME_CHARS:
        raise InvalidDecision(f"Keep the name to {RULE_NAME_CHARS} characters.", "name")
    with transaction.atomic():
        rule, created = ApprovalRule.objects.get_or_create(kind=kind, name=name)
        if created:
            audit("approval.add_rule", actor=user, detail=str(rule))
    _rules.forget()
    return rule


def remove_rule(rule: ApprovalRule, *, user=None) -> None:
    with transaction.atomic():
        audit("approval.remove_rule", actor=user, detail=str(rule))
        rule.delete()
    _rules.forget()
