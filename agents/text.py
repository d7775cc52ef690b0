"""Text from outside (a model, a tool, an MCP server, a webhook endpoint) made storable.

PostgreSQL refuses NUL in text and `\\u0000` in jsonb, and no database takes a lone
surrogate (a model's JSON may escape one, `"\\ud800"`): one such character in an answer made
the save raise, and the step that tried it crash on every attempt. They are dropped (NUL)
or replaced by U+FFFD (surrogates) before the text is stored.
"""

from __future__ import annotations

import re

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
EXCEPTION_CHARS = 1000


def _replacement(match: re.Match) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def clean(text: str) -> str:
    """`text` as any database stores it: without NUL, lone surrogates replaced."""
    if UNSTORABLE.search(text) is None:
        return text
    return UNSTORABLE.sub(_replacement, text)


def described(exc: BaseException) -> str:
    """An exception as its class and message, storable (a message may quote outside text)."""
    return clean(f"{type(exc).__name__}: {exc}")[:EXCEPTION_CHARS]


def clean_json(value: object) -> object:
    """`value` with every string in it (keys included) cleaned; other values as they are.

    Iterative, so a deeply nested answer cannot exhaust the stack here.
    """
    if isinstance(value, str):
        return clean(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    root: dict | list = {} if isinstance(value, dict) else []
    pending = [(value, root)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, (dict, list, tuple)):
                copy: object = {} if isinstance(item, dict) else []
                pending.append((item, copy))
            else:
                copy = clean(item) if isinstance(item, str) else item
            if isinstance(target, dict):
                target[clean(key) if isinstance(key, str) else key] = copy
            else:
                target.append(copy)
    return root


# A cell a spreadsheet would read as a formula (OWASP's list) is written with a quote first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """`value` for a CSV cell: text that a spreadsheet would run as a formula gets a quote
    before it; anything else is left as it is (csv writes None as an empty cell)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
