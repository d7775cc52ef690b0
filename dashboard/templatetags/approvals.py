"""What an approval panel shows: the text an operator edits, and the default action."""

import json

from django import template
from django.conf import settings

from agents import approvals
from agents.models import SubtaskStatus

register = template.Library()


@register.filter
def last_user_text(messages: list) -> str:
    return approvals.last_user_text(messages)


@register.filter
def arguments_json(approval) -> str:
    """A tool call's proposed arguments, as the JSON an operator edits."""
    return json.dumps(approvals.tool_arguments(approval), indent=2, ensure_ascii=False)


@register.simple_tag
def approval_timeout_action() -> str:
    return settings.APPROVAL_TIMEOUT_ACTION


@register.simple_tag
def pending_approval(sub):
    """The approval a subtask awaits: prefetched on a job's page (agents.queries), read
    here for a subtask alone; None unless it awaits one."""
    if sub.status != SubtaskStatus.AWAITING_APPROVAL:
        return None
    prefetched = getattr(sub, "pending_approvals", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return approvals.pending().filter(subtask=sub).first()
