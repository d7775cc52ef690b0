"""Built-in tools an agent may call, in the OpenAI tools protocol: read and write the job's
shared state (writes through the versioned compare-and-set, the agent as author), and
`http_get` from an allowlist of hosts. A failing tool gives the model an error result, never
an exception: the model may try something else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from . import state
from .addresses import lookup, refusal
from .models import SharedState

RESULT_CHARS = 4000
RESERVED_KEYS = frozenset({"pending_tasks", "results", "final"})  # see agents.state
HTTP_TIMEOUT_S = 10.0


class ToolError(Exception):
    """What went wrong, in words the model can act on."""


@dataclass(frozen=True)
class Context:
    job_id: int
    author: str  # "agent-slug/subtask-key": a write's author in the state's history


@dataclass(frozen=True)
class Outcome:
    result: str
    error: str
    latency_s: float


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict
    run: Callable[[Context, dict], str]

    def schema(self) -> dict:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _read_state(ctx: Context, args: dict) -> str:
    data = SharedState.objects.filter(job_id=ctx.job_id).values_list("data", flat=True).first()
    data = data or {}
    key = args.get("key")
    if key:
        if key not in data:
            raise ToolError(f"The shared state has no key {key!r}; keys: {sorted(data)}.")
        data = data[key]
    return json.dumps(data, ensure_ascii=False, default=str)


def _write_state(ctx: Context, args: dict) -> str:
    key = args.get("key")
    if not isinstance(key, str) or not key.strip():
        raise ToolError("Give the key to write, a non-empty string.")
    if key in RESERVED_KEYS:
        raise ToolError(f"{key!r} is written by Baton itself; choose another key.")
    version = state.write(ctx.job_id, {key: args.get("value")}, author=ctx.author)
    return f"Written: the shared state is now at version {version}."


def _http_get(ctx: Context, args: dict) -> str:
    url = args.get("url")
    parts = urlsplit(url if isinstance(url, str) else "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError("Give an http:// or https:// URL.")
    allowed = {host.lower() for host in settings.TOOL_HTTP_ALLOWLIST}
    if parts.hostname.lower() not in allowed:
        raise ToolError(
            f"{parts.hostname} is not among the hosts this tool may fetch from "
            f"({', '.join(sorted(allowed)) or 'none are allowed'})."
        )
    if not settings.TOOL_HTTP_ALLOW_PRIVATE:
        try:
            found = lookup(parts.hostname, parts.port or 443)
        except LookupError as exc:
            raise ToolError(str(exc)) from None
        for address in found:
            if reason := refusal(address):
                raise ToolError(f"{parts.hostname} resolves to a {reason} address: refused.")
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_S, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ToolError(f"The request failed: {exc}") from None
    return f"HTTP {response.status_code}\n\n{response.text[:RESULT_CHARS]}"


BUILT_IN = {
    tool.name: tool
    for tool in (
        Tool(
            "read_state",
            "Read the job's shared state (results of teammates and notes), or one key of it.",
            {"type": "object", "properties": {"key": {"type": "string"}}},
            _read_state,
        ),
        Tool(
            "write_state",
            "Write a value under a key of the job's shared state, for teammates to read.",
            {
                "type": "object",
                "properties": {"key": {"type": "string"}, "value": {}},
                "required": ["key", "value"],
            },
            _write_state,
        ),
        Tool(
            "http_get",
            "Fetch a web page or API over HTTP(S) from an allowed host; returns its text.",
            {
                "type": "object",
                "properties": {"url": {"type": "string"}},
                "required": ["url"],
            },
            _http_get,
        ),
    )
}


def schemas(names: list[str]) -> list[dict]:
    """The `tools` list of a request offering these tools."""
    return [BUILT_IN[name].schema() for name in names if name in BUILT_IN]


def run(name: str, arguments: str, ctx: Context) -> Outcome:
    """Run one tool call of the model's; its result or its error, never an exception."""
    started = time.monotonic()
    try:
        tool = BUILT_IN.get(name)
        if tool is None:
            raise ToolError(f"There is no tool {name!r}; tools: {sorted(BUILT_IN)}.")
        try:
            args = json.loads(arguments or "{}")
        except ValueError:
            raise ToolError("The arguments are not valid JSON.") from None
        if not isinstance(args, dict):
            raise ToolError("The arguments must be a JSON object.")
        result, error = tool.run(ctx, args)[:RESULT_CHARS], ""
    except ToolError as exc:
        result, error = "", str(exc)
    return Outcome(result, error, time.monotonic() - started)
