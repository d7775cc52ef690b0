"""A small MCP server (streamable HTTP) to try MCP tools with, next to `make dev`:

    python manage.py mcp_demo_server --port 8002

then register http://127.0.0.1:8002/mcp on the Tools page (Baton's processes need
MCP_ALLOW_PRIVATE=true: it listens on loopback), and grant one of its tools to an agent.

Its tools: word_count, add, utc_now, and fail, which always fails (what the model sees of a
tool's error). With --token-env NAME it answers only requests bearing the token held by that
environment variable, as a server behind authentication does.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand, CommandError
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def demo_server() -> MCPServer:
    server = MCPServer("baton-demo", log_level="WARNING")

    @server.tool()
    def word_count(text: str) -> str:
        """Count the words and characters of a text."""
        return f"{len(text.split())} words, {len(text)} characters"

    @server.tool()
    def add(a: float, b: float) -> str:
        """Add two numbers."""
        return f"{a + b:g}"

    @server.tool()
    def utc_now() -> str:
        """The current date and time in UTC (ISO 8601)."""
        return datetime.now(UTC).isoformat(timespec="seconds")

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails, giving the reason: how a tool's error reaches the model."""
        raise ToolError(f"failed as asked: {reason}")

    return server


def demo_app(token: str | None = None):
    """The server's ASGI app at /mcp; with `token`, a request without it is a 401."""
    app = demo_server().streamable_http_app()
    if token is None:
        return app
    expected = f"Bearer {token}".encode()

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"A bearer token is required."})
            return
        await app(scope, receive, send)

    return guarded


class Command(BaseCommand):
    help = "Serve a small MCP server (streamable HTTP at /mcp) to try MCP tools with."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8002)
        parser.add_argument(
            "--token-env",
            default="",
            help="require the bearer token held by this environment variable",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        token = None
        if name := options["token_env"]:
            token = os.environ.get(name, "").strip()
            if not token:
                raise CommandError(f"The environment variable {name} is not set.")
        url = f"http://{options['host']}:{options['port']}/mcp"
        self.stdout.write(f"MCP demo server at {url}{' (token required)' if token else ''}")
        uvicorn.run(
            demo_app(token), host=options["host"], port=options["port"], log_level="warning"
        )
