"""JSON from outside Baton (an API body, a form, the admin) taken or refused in words:
nested at most JSON_MAX_DEPTH levels, holding only text the database can store, numbers
finite. The API's parser, the dashboard's forms and the admin's JSON fields all check here."""

from __future__ import annotations

import json
import math

from .text import UNSTORABLE

# Deeper nesting is refused before anything walks it recursively (Python's JSON, templates,
# rendering, validation, storage); the shared state bounds its writes by it too.
JSON_MAX_DEPTH = 32


class JSONInputError(ValueError):
    """JSON that Baton will not take; `path` leads to the bad value, `too_deep` says why."""

    def __init__(self, message: str, path: tuple = (), *, too_deep: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.too_deep = too_deep


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str | bytes) -> object:
    """Parse JSON text as every entry point does: strict, bounded in depth, and storable."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise too_deep() from None
    check_json(value)
    return value


def check_json(value: object) -> None:
    """Raise JSONInputError for nesting past JSON_MAX_DEPTH, a string or key PostgreSQL
    cannot store, or a number that is not finite. Iterative: depth is what is checked."""
    pending = [(value, (), 1)]
    while pending:
        item, path, level = pending.pop()
        if isinstance(item, dict | list):
            if level > JSON_MAX_DEPTH:
                raise too_deep(path)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, inner in pairs:
                if isinstance(key, str) and UNSTORABLE.search(key):
                    # The object's path: the key itself could not be written back as UTF-8.
                    raise JSONInputError(_unstorable("key"), path)
                pending.append((inner, (*path, key), level + 1))
        elif isinstance(item, str) and UNSTORABLE.search(item):
            raise JSONInputError(_unstorable("text"), path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise JSONInputError("Numbers must be finite.", path)


def depth(value: object) -> int:
    """How many containers deep `value` nests (a scalar 0, `[1]` 1), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in children)
    return deepest


def too_deep(path: tuple = ()) -> JSONInputError:
    return JSONInputError(
        f"JSON nested deeper than {JSON_MAX_DEPTH} levels is not accepted.", path, too_deep=True
    )


def _unstorable(what: str) -> str:
    return f"This {what} holds a NUL character (\\u0000) or a lone surrogate: remove it."
