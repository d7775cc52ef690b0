"""MCP servers over the streamable HTTP transport (the `mcp` SDK): list a server's tools and
call one. The SDK is async; these are synchronous wrappers, each call a short connection of
its own (an event loop in the calling thread, or in a thread of its own when that thread
already runs one), so a Celery worker thread or a view can call them as they are.

A server's bearer token is read from the environment variable it names (`auth_env`), at the
moment of the request: it is never stored, logged, rendered or put in an error (a server
quoting it back has it withheld). The variable must be named MCP_…, so that a server
registered in the dashboard cannot be sent Baton's own secrets (SECRET_KEY, LLM_API_KEY, the
database's password), and the deployer binds each variable to the origins it may be sent to
(MCP_TOKEN_ORIGINS): whoever registers or edits a server cannot send another server's token
to a host of their choosing. That is checked when a server is saved through a form and again
before every request; a server's URL changed drops the variable it had (MCPServer.save).

Connections are agents.outbound's: the URL resolved once and checked (servers on private
networks are refused unless MCP_ALLOW_PRIVATE), the SDK's client pinned to the checked
addresses, no redirect followed, at most ANSWER_BYTES read and all within MCP_TIMEOUT_S.
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

from . import outbound
from .models import Agent, MCPServer
from .text import clean, clean_json

AUTH_ENV = re.compile(r"^MCP_[A-Z0-9_]+$")
AUTH_ENV_RULE = "an environment variable named MCP_… (capitals, digits and _)"
MAX_PAGES = 20  # of a tool listing: a server that never stops paginating cannot hang a fetch
DESCRIPTION_CHARS = 1000
ANSWER_BYTES = 8 * 1024 * 1024  # all a call may read: a listing of hundreds of tools fits

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


def check_url(url: str, within: float | None = None) -> outbound.Target:
    """The URL's host resolved and checked, or a ServerError saying why Baton will not call
    it: not http(s), credentials in it (they would be stored and shown: name a token's
    variable instead), or, unless MCP_ALLOW_PRIVATE, a host on a private network. Checked
    at registration and before every connection (which goes to the addresses checked)."""
    try:
        return outbound.check(
            url,
            allow_private=settings.MCP_ALLOW_PRIVATE,
            setting="MCP_ALLOW_PRIVATE",
            credentials_hint=": name a token's variable instead",
            within=within,
        )
    except (outbound.Refused, outbound.Unreachable) as exc:
        raise ServerError(str(exc)) from None


def origin(url: str) -> str:
    """scheme://host:port, the port always written (https://a.example is https://a.example:443)."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        port = 0
    return f"{parts.scheme}://{parts.hostname or ''}:{port}".lower()


def token_refusal(auth_env: str, url: str) -> str | None:
    """Why the token in `auth_env` may not be sent to `url`, or None: the variable is not
    named MCP_…, or MCP_TOKEN_ORIGINS does not list the URL's origin for it."""
    if not AUTH_ENV.match(auth_env):
        return f"A token must come from {AUTH_ENV_RULE}, not {auth_env}."
    allowed = settings.MCP_TOKEN_ORIGINS.get(auth_env, [])
    if origin(url) in {origin(listed) for listed in allowed}:
        return None
    where = f"only to {', '.join(allowed)}" if allowed else "nowhere"
    return (
        f"The token in {auth_env} may be sent {where}, not to {origin(url)} "
        f"(the deployer binds it in MCP_TOKEN_ORIGINS)."
    )


def _headers(server: MCPServer) -> dict[str, str]:
    if not server.auth_env:
        return {}
    if refused := token_refusal(server.auth_env, server.url):
        raise ServerError(f"MCP server {server.slug}: {refused}")
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


def _explain(exc: BaseException, server: MCPServer, refused: list[int], cut: str) -> str:
    import httpx2
    from mcp.shared.exceptions import MCPError

    timeout = settings.MCP_TIMEOUT_S
    where = f"MCP server {server.slug} ({server.url})"
    if cut:  # the connection was cut: too much, too long, a redirect
        return f"{where}: {cut}"
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

    headers = _headers(server)
    try:
        target = check_url(server.url, within=settings.MCP_TIMEOUT_S)
    except ServerError as exc:
        raise ServerError(f"MCP server {server.slug}: {exc}") from None
    timeout = settings.MCP_TIMEOUT_S
    refused: list[int] = []

    async def note_refusal(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            refused.append(response.status_code)

    cut = ""

    async def session() -> Any:
        nonlocal cut
        http, budget = outbound.async_client(
            target,
            deadline_s=timeout,
            max_bytes=ANSWER_BYTES,
            headers=headers,
            event_hooks={"response": [note_refusal]},
        )
        try:
            with anyio.fail_after(timeout):
                async with http:
                    transport = streamable_http_client(server.url, http_client=http)
                    async with Client(
                        transport, cache=None, read_timeout_seconds=timeout
                    ) as client:
                        return await work(client)
        finally:
            cut = budget.cut

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
        raise ServerError(_withheld(_explain(exc, server, refused, cut), server)) from None


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
