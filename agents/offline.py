"""The built-in offline model: deterministic answers, with no language model behind them.

Used when no LLM_API_KEY is set, and by the LLM simulator, so the whole pipeline runs
end to end without a provider. Every answer says plainly that no model was called.
"""

import hashlib
import json
import re
import time

from . import judging
from .planning import DECOMPOSITION_MARKER
from .tokens import content_text

_GIST_CHARS = 160
_TASK_CHARS = 300
_TAIL_CHARS = 60
# The offline judge's scores lie in this range: never 0 or 1, so that a mean has noise.
JUDGE_LOW, JUDGE_HIGH = 0.3, 0.95
_WORD_RE = re.compile(r"\w+")


def pieces(text: str, count: int = 8) -> list[str]:
    """`text` cut into about `count` pieces at spaces, the way a model streams it."""
    words = text.split(" ")
    size = max(1, -(-len(words) // count))
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [piece for piece in [part + " " for part in parts[:-1]] + parts[-1:] if piece]


def is_decomposition(messages: list[dict]) -> bool:
    return any(
        message.get("role") == "system"
        and DECOMPOSITION_MARKER in content_text(message.get("content")).lower()
        for message in messages
    )


def is_judge(messages: list[dict]) -> bool:
    return any(
        message.get("role") == "system"
        and judging.JUDGE_MARKER in content_text(message.get("content")).lower()
        for message in messages
    )


def respond(messages: list[dict], *, label: str = "offline model") -> str:
    request = _last_user_text(messages)
    if is_decomposition(messages):
        return json.dumps(_plan(_shorten(request, _TASK_CHARS) or "the job"))
    if is_judge(messages):
        return json.dumps(judge_verdict(request, label=label))
    gist = _shorten(request, _GIST_CHARS) or "(empty request)"
    answer = (
        f"[{label}] This is a placeholder answer from Baton's built-in {label}; "
        f"no language model was called. The request was: {gist}"
    )
    # Its end and the instructions too: a changed prompt or a changed upstream answer then
    # changes this answer (and what a judge makes of it), as it would a model's.
    flat = " ".join(request.split())
    if len(flat) > _GIST_CHARS:
        answer += f" It ended: …{flat[-_TAIL_CHARS:].lstrip()}"
    results = _tool_results(messages)
    if results:
        answer += f" A tool answered: {_shorten(results[-1], _GIST_CHARS)}"
    system = _system_text(messages)
    if system:
        answer += f" Instructions followed: {_shorten(system, _TAIL_CHARS)}"
    return answer


def tool_calls(messages: list[dict], tools: list[dict]) -> list[dict]:
    """A model's first move when offered tools: call the first one, with arguments made
    from its JSON schema (every required property, a plain value of its type). Once tool
    results follow the last user message, none: it answers in text."""
    functions = [t.get("function") for t in tools if isinstance(t, dict)]
    functions = [f for f in functions if isinstance(f, dict) and f.get("name")]
    if not functions or _tool_results(messages):
        return []
    function = functions[0]
    schema = function.get("parameters") or {}
    properties = schema.get("properties") or {}
    samples = {"string": "simulated", "integer": 1, "number": 1.0, "boolean": True}
    arguments = {
        name: samples.get((properties.get(name) or {}).get("type"), "simulated")
        for name in schema.get("required") or []
    }
    return [
        {
            "id": f"call_{time.monotonic_ns()}",
            "type": "function",
            "function": {"name": function["name"], "arguments": json.dumps(arguments)},
        }
    ]


def judge_verdict(request: str, *, label: str = "offline model") -> dict:
    """A judge's answer made without a model, the same for the same request: with an
    expected output, the share of its words the output has; otherwise a value drawn from a
    hash of the output and the rubric. Either way in [JUDGE_LOW, JUDGE_HIGH]."""
    parts = judging.request_sections(request)
    output = parts.get("output", "")
    expected = set(_WORD_RE.findall(parts.get("expected", "").lower()))
    if expected:
        found = expected & set(_WORD_RE.findall(output.lower()))
        share = len(found) / len(expected)
        how = f"{len(found)} of the {len(expected)} words of the expected output are in it"
    else:
        seed = f"{parts.get('rubric', '')}\n{output}".encode()
        share = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big") / 2**32
        how = "a value drawn from a hash of the output"
    score = round(JUDGE_LOW + (JUDGE_HIGH - JUDGE_LOW) * share, 2)
    reason = f"[{label}] No language model was called: a deterministic score ({how})."
    return {"score": score, "reason": reason}


def _tool_results(messages: list[dict]) -> list[str]:
    """The tool results that follow the last user message."""
    results: list[str] = []
    for message in reversed(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            break
        if role == "tool":
            results.insert(0, content_text(message.get("content")))
    return results


def _plan(task: str) -> dict:
    return {
        "subtasks": [
            {
                "id": "research",
                "type": "research",
                "assign_to": "researcher",
                "payload": {"description": f"Research what is needed for: {task}"},
                "depends_on": [],
            },
            {
                "id": "coding",
                "type": "coding",
                "assign_to": "coder",
                "payload": {"description": f"Implement a solution for: {task}"},
                "depends_on": ["research"],
            },
            {
                "id": "review",
                "type": "review",
                "assign_to": "reviewer",
                "payload": {"description": f"Review the implementation of: {task}"},
                "depends_on": ["coding"],
            },
        ]
    }


def _system_text(messages: list[dict]) -> str:
    return " ".join(
        content_text(m.get("content")) for m in messages if m.get("role") == "system"
    ).strip()


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"
