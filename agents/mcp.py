"""MCP servers over the streamable HTTP transport (the `mcp` SDK): list a server's tools and
call one. The SDK is async; these are synchronous wrappers, each call a short connection of
its own (an event loop in the calling thread, or in a thread of its own when that thread
already runs one), so a Celery worker thread or a view can call them as they are.

A server's bearer token is read from the environment variable it names (`auth_env`), at the
moment of the request: it is never stored, logged, rendered or put in an error (a server
quoting it back has it withheld). The variable must be named MCP_…, so that a server
registered in the dashboard cannot be sent Baton's own secrets (SECRET_KEY, LLM_API_KEY, the
database's password). Servers on private networks are refused unless MCP_ALLOW_PRIVATE.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .addresses import lookup, refusal
from .models import Agent, MCPServer
from .text import clean, clean_json

AUTH_ENV = re.compile(r"^MCP_[A-Z0-9_]+$")
AUTH_ENV_RULE = "an environment variable named MCP_… (capitals, digits and _)"
MAX_PAGES = 20  # of a tool listing: a server that never stops paginating cannot hang a fetch
DESCRIPTION_CHARS = 1000

if TYPE_CHECKING:
    from mcp import Client


class ServerError(Exception):
    """What went wrong with a server, in words for an operator or a model (agents.tools
    hands it to the model as a tool's error result)."""


# The SDK (and its pydantic models) is imported by the calls that connect, not with this
# module: every process loads this module (admin, tools) and most never talk to a server; the
# import costs a worker about 2 s of CPU at start.


def auth_env_set(server: MCPServer) -> bool:
    """Whether the variable holding the server's token is set (never what it holds)."""
    return bool(server.auth_env and os.environ.get(server.auth_env, "").strip())


def check_url(url: str) -> None:
    """A ServerError saying why Baton will not call this URL: not http(s), credentials in it
    (they would be stored and shown: name a token's variable instead), or, unless
    MCP_ALLOW_PRIVATE, a host on a private network. Checked at registration and before
    every connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError("Give an http:// or https:// URL.")
    if parts.username or parts.password:
        raise ServerError("Put no credentials in the URL: name a token's variable instead.")
    if settings.MCP_ALLOW_PRIVATE:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = lookup(parts.hostname, port)
    except (LookupError, ValueError) as exc:
        raise ServerError(str(exc)) from None
    for address in found:
        if reason := refusal(address):
            raise ServerError(
                f"{parts.hostname} resolves to {address}, a {reason} address: Baton does not "
                "call into private networks (MCP_ALLOW_PRIVATE)."
            )


def _headers(server: MCPServer) -> dict[str, str]:
    if not server.auth_env:
        return {}
    if not AUTH_ENV.match(server.auth_env):
        raise ServerError(
            f"The token of MCP server {server.slug} must come from {AUTH_ENV_RULE}, "
            f"not {server.auth_env}."
        )
    token = os.environ.get(server.auth_env, "").strip()
    if not token:
        raise ServerError(
            f"The environment variable {server.auth_env}, holding the token of MCP server "
            f"{server.slug}, is not set."
        )
    return {"Authorization": f"Bearer {token}"}


def _withheld(text: str, server: MCPServer) -> str:
    """The text without the server's token in it: a server's error or result may quote what
    it was sent, and is stored and shown."""
    token = os.environ.get(server.auth_env, "").strip() if server.auth_env else ""
    if not token or token not in text:
        return text
    return text.replace(token, "[token withheld]")


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside the SDK's (nested) task group errors."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _explain(exc: BaseException, server: MCPServer, refused: list[int]) -> str:
    import httpx2
    from mcp.shared.exceptions import MCPError

    timeout = settings.MCP_TIMEOUT_S
    where = f"MCP server {server.slug} ({server.url})"
    leaf = next(
        (leaf for leaf in _leaves(exc) if not isinstance(leaf, asyncio.CancelledError)),
        exc,
    )
    if isinstance(leaf, TimeoutError | httpx2.TimeoutException):
        return f"{where} did not answer within {timeout:g} s."
    if isinstance(leaf, httpx2.ConnectError):
        return f"Could not connect to {where}: {leaf}."
    if refused:
        status = refused[-1]
        hint = " (is its token right?)" if status in (401, 403) else ""
        return f"{where} answered HTTP {status}{hint}."
    if isinstance(leaf, MCPError):
        return f"{where} answered with an error: {leaf.message}"
    if isinstance(leaf, httpx2.HTTPError):
        return f"The request to {where} failed: {leaf}."
    return f"The request to {where} failed: {type(leaf).__name__}: {leaf}"


def _run(server: MCPServer, work) -> Any:
    """Connect, run `work(client)` within the timeout, disconnect; a failure is a ServerError."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    try:
        check_url(server.url)
    except ServerError as exc:
        raise ServerError(f"MCP server {server.slug}: {exc}") from None
    headers = _headers(server)
    timeout = settings.MCP_TIMEOUT_S
    refused: list[int] = []

    async def note_refusal(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            refused.append(response.status_code)

    async def session() -> Any:
        with anyio.fail_after(timeout):
            async with httpx2.AsyncClient(
                headers=headers,
                timeout=httpx2.Timeout(timeout),
                event_hooks={"response": [note_refusal]},
            ) as http:
                transport = streamable_http_client(server.url, http_client=http)
                async with Client(transport, cache=None, read_timeout_seconds=timeout) as client:
                    return await work(client)

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return anyio.run(session)
        # Called from async code: its loop must not be blocked, nor a second one nested in it.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(anyio.run, session).result()
    except ServerError:
        raise
    except Exception as exc:
        raise ServerError(_withheld(_explain(exc, server, refused), server)) from None


def fetch_tools(server: MCPServer) -> list[dict]:
    """List the server's tools and store them on it (or store why that failed, and raise)."""

    async def listing(client: Client) -> list[dict]:
        found, cursor = [], None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            found += [
                {
                    "name": tool.name,
                    "description": (tool.description or "")[:DESCRIPTION_CHARS],
                    "input_schema": tool.input_schema or {"type": "object", "properties": {}},
                }
                for tool in page.tools
            ]
            cursor = page.next_cursor
            if cursor is None:
                break
        return found

    try:
        found = _run(server, listing)
        # The token, were it quoted anywhere in the listing, as in any of its texts.
        found = json.loads(_withheld(json.dumps(found, ensure_ascii=False), server))
        found = clean_json(found)  # as jsonb: no NUL
    except ServerError as exc:
        server.fetch_error = clean(str(exc))
        server.save(update_fields=["fetch_error", "updated_at"])
        raise
    server.tools, server.tools_fetched_at, server.fetch_error = found, timezone.now(), ""
    server.save(update_fields=["tools", "tools_fetched_at", "fetch_error", "updated_at"])
    return found


def _text(content: list) -> str:
    parts = []
    for block in content:
        if getattr(block, "type", "") == "text":
            parts.append(block.text)
        else:
            mime = getattr(block, "mime_type", None) or getattr(block, "uri", None) or ""
            parts.append(f"[{getattr(block, 'type', 'content')} {mime}]".replace(" ]", "]"))
    return "\n".join(parts)


def call_tool(server: MCPServer, name: str, arguments: dict) -> str:
    """Call one of the server's tools; the text of its result. An error result, or no
    answer, is a ServerError saying so."""

    async def call(client: Client):
        return await client.call_tool(name, arguments)

    result = _run(server, call)
    text = _text(result.content)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False, default=str)
    text = _withheld(text, server)
    if result.is_error:
        raise ServerError(
            f"The tool {name} of MCP server {server.slug} failed: {text or 'no reason given'}"
        )
    return text


def delete_server(server: MCPServer) -> list[str]:
    """Delete the server and take its tools out of every agent's grants (a slug registered
    again later grants nothing by itself); the slugs of the agents changed."""
    prefix = f"{server.slug}/"

    def granted(agent: Agent) -> bool:
        return any(isinstance(g, str) and g.startswith(prefix) for g in agent.tools)

    holders = [a.pk for a in Agent.objects.only("pk", "tools") if granted(a)]
    changed = []
    with transaction.atomic():
        for agent in Agent.objects.select_for_update().filter(pk__in=holders).order_by("pk"):
            if granted(agent):  # still, now that it is locked
                agent.tools = [g for g in agent.tools if not str(g).startswith(prefix)]
                agent.save(update_fields=["tools", "updated_at"])
                changed.append(agent.slug)
        server.delete()
    return changed
