import json

from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()

# A value of the state tree is folded past this many characters, and cut past the next: a
# state holding every result of a large plan stays a light page (results are whole on each
# subtask's page).
STATE_VALUE_FOLDED = 160
STATE_VALUE_CHARS = 600


@register.filter
def duration(seconds: float | None) -> str:
    """12 s, 3 min 4 s, 2 h 5 min."""
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@register.filter
def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.simple_tag
def plan_graph_of(subtasks):
    """The plan's graph layout, for templates that events render outside a view."""
    from dashboard.graph import plan_graph

    return plan_graph(subtasks)


def _tree(value: object, depth: int) -> str:
    if isinstance(value, dict) and value:
        items = format_html_join(
            "",
            '<li><span class="key">{}</span>: {}</li>',
            ((key, _tree(item, depth + 1)) for key, item in value.items()),
        )
        return format_html('<ul class="tree">{}</ul>', items)
    if isinstance(value, list) and value:
        items = format_html_join("", "<li>{}</li>", ((_tree(item, depth + 1),) for item in value))
        return format_html('<ol class="tree" start="0">{}</ol>', items)
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    if len(text) > STATE_VALUE_FOLDED:
        more = len(text) - STATE_VALUE_CHARS
        return format_html(
            '<details><summary>{}…</summary><div class="value">{}{}</div></details>',
            text[:STATE_VALUE_FOLDED],
            text[:STATE_VALUE_CHARS],
            format_html("… ({} more characters)", more) if more > 0 else "",
        )
    return format_html('<span class="value">{}</span>', text)


@register.filter
def state_tree(data: object) -> str:
    """The blackboard as nested lists; every string escaped, long values folded."""
    return _tree(data, 0)


@register.simple_tag
def state_history(state, limit: int = 20) -> list[dict]:
    """The latest versions, newest first, each with its diff against the one before."""
    from agents.state import history

    return history(state, limit)
