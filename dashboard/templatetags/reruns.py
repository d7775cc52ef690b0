from django import template

from agents import rerun

register = template.Library()


@register.filter
def can_rerun(sub) -> bool:
    """Whether "re-run from here" applies (reads the subtask's job and dependencies)."""
    return not rerun.refusal(sub)
