"""Tools an agent may call, in the OpenAI tools protocol. Built-in: read and write the job's
shared state (writes through the versioned compare-and-set, the agent as author), and
`http_get` from an allowlist of hosts. And the tools of MCP servers registered in the
dashboard (agents.mcp), granted as "<server slug>/<tool name>". A failing tool gives the
model an error result, never an exception: the model may try something else.

An agent's grants (`Agent.tools`) are what it may call: `schemas(grants)` offers them, under
function names the protocol accepts, and `run` resolves a function name through the same
grants, so a tool not granted is an error result, never a run.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from . import mcp, outbound, state
from .models import MCPServer, SharedState
from .text import clean, clean_json, described

log = logging.getLogger(__name__)
RESULT_CHARS = 4000
RESERVED_KEYS = frozenset({"pending_tasks", "results", "final"})  # see agents.state
HTTP_MAX_BYTES = 4 * RESULT_CHARS  # the most RESULT_CHARS characters take in UTF-8


class ToolError(Exception):
    """What went wrong, in words the model can act on."""


@dataclass(frozen=True)
class Context:
    job_id: int
    author: str  # "agent-slug/subtask-key": a write's author in the state's history
    grants: tuple[str, ...]  # the agent's Agent.tools: all it may run


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
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ToolError("Give an http:// or https:// URL.")
    try:
        host = outbound.host_of(url)
        allowed = {name.lower() for name in settings.TOOL_HTTP_ALLOWLIST}
        if host not in allowed:
            raise ToolError(
                f"{host} is not among the hosts this tool may fetch from "
                f"({', '.join(sorted(allowed)) or 'none are allowed'})."
            )
        answer = outbound.request(
            "GET",
            url,
            allow_private=settings.TOOL_HTTP_ALLOW_PRIVATE,
            setting="TOOL_HTTP_ALLOW_PRIVATE",
            deadline_s=settings.TOOL_HTTP_DEADLINE_S,
            max_bytes=HTTP_MAX_BYTES,
        )
    except (outbound.Refused, outbound.Unreachable) as exc:
        raise ToolError(str(exc)) from None
    if answer.cut:
        raise ToolError(
            f"{answer.cut} It had answered HTTP {answer.status}; {len(answer.body)} bytes came."
        )
    return f"HTTP {answer.status}\n\n{answer.text()[:RESULT_CHARS]}"


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


FUNCTION_NAME = re.compile(r"[^a-zA-Z0-9_-]")
FUNCTION_NAME_CHARS = 64  # the protocol's ^[a-zA-Z0-9_-]{1,64}$


def function_names(grants) -> dict[str, str]:
    """Function name -> grant, for these grants. A built-in keeps its name; an MCP tool
    "slug/tool" is "slug__tool", other characters made _, cut to 64 and made unique. The
    same grants always give the same names: a request offers them, `run` resolves them."""
    names: dict[str, str] = {}
    for grant in grants:
        if not isinstance(grant, str) or not grant or grant in names.values():
            continue
        base = FUNCTION_NAME.sub("_", grant.replace("/", "__", 1))[:FUNCTION_NAME_CHARS] or "_"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base[: FUNCTION_NAME_CHARS - len(str(n)) - 1]}_{n}"
        names[name] = grant
    return names


def grant_of(function_name: str, grants) -> str:
    """The grant a function name of a request stands for (itself when it is none of them):
    what the trace shows and what tool approval rules name."""
    return function_names(grants).get(function_name, function_name)


def _mcp_servers(grants) -> dict[str, MCPServer]:
    """The enabled servers these grants name, by slug (one query, none for built-ins only)."""
    slugs = {g.split("/", 1)[0] for g in grants if isinstance(g, str) and "/" in g}
    if not slugs:
        return {}
    return {s.slug: s for s in MCPServer.objects.filter(slug__in=slugs, enabled=True)}


def schemas(grants) -> list[dict]:
    """The `tools` list of a request offering the tools granted: built-ins, and the MCP tools
    of enabled servers as last fetched (one no longer listed is not offered)."""
    servers = _mcp_servers(grants)
    offered = []
    for name, grant in function_names(grants).items():
        if grant in BUILT_IN:
            offered.append(BUILT_IN[grant].schema())
            continue
        slug, _, tool_name = grant.partition("/")
        listed = servers[slug].tools if slug in servers else []
        tool = next((t for t in listed if t.get("name") == tool_name), None)
        if tool_name and tool is not None:
            offered.append(
                Tool(
                    name,
                    tool.get("description") or f"{tool_name} (MCP server {slug})",
                    tool.get("input_schema") or {"type": "object", "properties": {}},
                    None,
                ).schema()
            )
    return offered


def available() -> list[tuple[str, str]]:
    """(grant, label) of every tool an agent may be granted: the built-ins, then the tools
    of every enabled MCP server as last fetched."""
    choices = [(name, f"{name}: {tool.description}") for name, tool in BUILT_IN.items()]
    for server in MCPServer.objects.filter(enabled=True).only("name", "slug", "tools"):
        for tool in server.tools:
            description = (tool.get("description") or "").strip().splitlines()
            label = f"{server.name} / {tool['name']}"
            choices.append(
                (
                    f"{server.slug}/{tool['name']}",
                    label + (f": {description[0]}" if description else ""),
                )
            )
    return choices


def _run_mcp(grant: str, args: dict) -> str:
    slug, _, tool_name = grant.partition("/")
    server = MCPServer.objects.filter(slug=slug).first()
    if server is None:
        raise ToolError(f"There is no MCP server {slug!r} any more.")
    if not server.enabled:
        raise ToolError(f"The MCP server {slug!r} is disabled.")
    try:
        return mcp.call_tool(server, tool_name, args)
    except mcp.ServerError as exc:
        raise ToolError(str(exc)) from None


def run(name: str, arguments: str, ctx: Context) -> Outcome:
    """Run one tool call of the model's, named by its function name; its result or its
    error, never an exception. Only a tool of `ctx.grants` runs."""
    started = time.monotonic()
    try:
        grant = function_names(ctx.grants).get(name)
        if grant is None:
            offered = sorted(function_names(ctx.grants))
            raise ToolError(
                f"There is no tool {name!r} granted to this agent; its tools: "
                f"{', '.join(offered) or 'none'}."
            )
        try:
            args = clean_json(json.loads(arguments or "{}"))  # "\u0000" decodes to a NUL
        except ValueError:
            raise ToolError("The arguments are not valid JSON.") from None
        if not isinstance(args, dict):
            raise ToolError("The arguments must be a JSON object.")
        if grant in BUILT_IN:
            result = BUILT_IN[grant].run(ctx, args)
        elif "/" in grant:
            result = _run_mcp(grant, args)
        else:
            raise ToolError(f"There is no tool {grant!r}; tools: {sorted(BUILT_IN)}.")
        result, error = clean(result)[:RESULT_CHARS], ""
    except ToolError as exc:
        result, error = "", clean(str(exc))
    except Exception as exc:
        # Any other failure (bad arguments a tool did not foresee, a URL httpx refuses) is
        # the model's to read too: raised, it crashed the subtask at every attempt.
        log.warning("tool %s raised", name, exc_info=True)
        result, error = "", f"The tool failed: {described(exc)}"
    return Outcome(result, error, time.monotonic() - started)
