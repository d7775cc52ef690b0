"""The shared state's rule of merging (agents.state writes by it) and its rebuild from the
versions stored: plain functions of JSON and of a queryset handed in, importing no model, so
a version's row (agents.models.SharedStateVersion.data) rebuilds itself with them.
"""

from __future__ import annotations

import json
import re

from django.db.models import TextField
from django.db.models.functions import Cast

from .jsonvalues import JSON_MAX_DEPTH, depth

# Outside a string: an opening or a closing bracket (strings are matched to be skipped).
_BRACKET_OR_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def merge(data: dict, changes: dict) -> dict:
    """Top-level keys are replaced, except dicts, which are merged one level deep."""
    merged = dict(data)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def merge_into(data: dict, changes: dict) -> None:
    """`merge`, in place: for a rebuild, whose intermediate versions nobody keeps."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value


def loads(text: str) -> object:
    """A stored state's JSON text, with whatever nests deeper than a written value may
    (states stored before the bound) kept as its JSON text: too deep for Python's parser or
    for a page's rendering otherwise."""
    keep = JSON_MAX_DEPTH + 1  # the state's own level, then a value's
    try:
        value = json.loads(text)
    except RecursionError:
        return json.loads(_fold_text(text, keep))
    return value if depth(value) <= keep else json.loads(_fold_text(text, keep))


def _fold_text(text: str, keep: int) -> str:
    """JSON text whose containers below `keep` levels are replaced by strings of their text:
    a scan of brackets outside strings, linear and without recursion."""
    out, level, start, copied = [], 0, 0, 0
    for match in _BRACKET_OR_STRING.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            level += 1
            if level == keep + 1:
                start = match.start()
            continue
        if level == keep + 1:
            out += [text[copied:start], json.dumps(text[start : match.end()])]
            copied = match.end()
        level -= 1
    out.append(text[copied:])
    return "".join(out)


def replay(rows, *, upto: int) -> dict:
    """The state as of version `upto` of `rows` (one state's versions): the snapshot at or
    before it, then the changes after that snapshot merged in order."""
    if upto <= 0:
        return {}
    kept = rows.filter(version__lte=upto, snapshot__isnull=False).order_by("-version")
    start, data = kept.values_list("version", Cast("snapshot", TextField())).first() or (0, "{}")
    data = loads(data)
    after = rows.filter(version__gt=start, version__lte=upto).order_by("version")
    for changes in after.values_list(Cast("changes", TextField()), flat=True):
        merge_into(data, loads(changes))
    return data
