import json

from django import template
from django.utils.html import format_html, format_html_join

from agents.state import depth, history

from ..graph import plan_graph

register = template.Library()

# A value of the state tree is folded past this many characters, and cut past the next: a
# state holding every result of a large plan stays a light page (results are whole on each
# subtask's page).
STATE_VALUE_FOLDED = 160
STATE_VALUE_CHARS = 600
# Levels drawn as nested lists; what nests deeper shows as its JSON text, folded and cut: the
# tree recurses, and a state stored before agents.state bounded depth can nest hundreds deep.
STATE_TREE_DEPTH = 8


class _Json(str):
    """Text already in JSON: a bracket, a comma, a key and its colon."""


def compact_json(value: object, limit: int) -> str:
    """`value` as compact JSON, its first `limit` characters: built without recursion, and
    no further than the limit however large the value."""
    out, size, todo = [], 0, [value]
    while todo and size <= limit:
        item = todo.pop()
        if isinstance(item, _Json):
            text = item
        elif isinstance(item, dict | list):
            pairs = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            inner: list = []
            for key, child in pairs:
                if inner:
                    inner.append(_Json(","))
                if key is not None:
                    inner.append(_Json(json.dumps(str(key), ensure_ascii=False) + ":"))
                inner.append(child)
            text, closing = ("{", "}") if isinstance(item, dict) else ("[", "]")
            todo += [_Json(closing), *reversed(inner)]
        else:
            text = json.dumps(item, ensure_ascii=False)
        out.append(text)
        size += len(text)
    return "".join(out)[:limit]


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
    """Indented JSON; compact past the tree's depth (the indenting encoder recurses)."""
    if depth(value) > STATE_TREE_DEPTH:
        return compact_json(value, STATE_VALUE_CHARS)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.simple_tag
def plan_graph_of(subtasks):
    """The plan's graph layout, for templates that events render outside a view."""
    return plan_graph(subtasks)


def _tree(value: object, depth: int) -> str:
    if depth >= STATE_TREE_DEPTH and isinstance(value, dict | list) and value:
        # One character past the cut, so that _folded sees the text was cut.
        return _folded(compact_json(value, STATE_VALUE_CHARS + 1), whole=False)
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
    return _folded(text)


def _folded(text: str, whole: bool = True) -> str:
    """A value's text, folded past STATE_VALUE_FOLDED characters and cut past the next;
    `whole` False: the text was already cut, at an unknown share of the value."""
    if len(text) > STATE_VALUE_FOLDED:
        more = len(text) - STATE_VALUE_CHARS
        if more <= 0:
            rest = ""
        elif whole:
            rest = format_html("… ({} more characters)", more)
        else:
            rest = "… (cut)"
        return format_html(
            '<details><summary>{}…</summary><div class="value">{}{}</div></details>',
            text[:STATE_VALUE_FOLDED],
            text[:STATE_VALUE_CHARS],
            rest,
        )
    return format_html('<span class="value">{}</span>', text)


@register.filter
def state_tree(data: object) -> str:
    """The blackboard as nested lists; every string escaped, long values folded."""
    return _tree(data, 0)


@register.simple_tag
def state_history(state, limit: int = 20) -> list[dict]:
    """The latest versions, newest first, each with its diff against the one before."""
    return history(state, limit)
