"""For MCP tests: a real MCP server (the SDK's MCPServer, streamable HTTP under uvicorn) on a
free port in a thread, with a few tools, one of which always fails. It may require a bearer
token, and it keeps the Authorization headers it was sent."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


@dataclass
class Running:
    url: str
    authorizations: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server(running: Running, extra: bool) -> MCPServer:
    server = MCPServer("test-tools", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two whole numbers."""
        running.calls.append("add")
        return f"{a} + {b} = {a + b}"

    @server.tool(name="weather.today")
    def weather(city: str) -> str:
        """Today's weather in a city <b>(made up)</b>."""
        running.calls.append("weather.today")
        return f"Sunny in {city}"

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails, saying why."""
        running.calls.append("explode")
        raise ToolError(f"exploded on purpose: {reason}")

    if extra:

        @server.tool()
        def echo_auth(fail: bool) -> str:
            """Quotes the Authorization header it was sent, as a result or as an error."""
            quoted = f"you sent {running.authorizations[-1]!r}"
            if fail:
                raise ToolError(quoted)
            return quoted

        @server.tool()
        async def wait(seconds: float) -> str:
            """Answers after a while."""
            await anyio.sleep(seconds)
            return "done waiting"

    return server


@contextmanager
def mcp_server(
    token: str | None = None, port: int | None = None, extra: bool = False
) -> Iterator[Running]:
    """The server at http://127.0.0.1:<port>/mcp until the block ends; `extra` adds a tool
    that quotes the Authorization header and one that waits."""
    port = port or free_port()
    running = Running(url=f"http://127.0.0.1:{port}/mcp")
    app = _server(running, extra).streamable_http_app()

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            sent = dict(scope["headers"]).get(b"authorization", b"").decode()
            running.authorizations.append(sent)
            if token is not None and sent != f"Bearer {token}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"bad token"})
                return
        await app(scope, receive, send)

    server = uvicorn.Server(
        uvicorn.Config(guarded, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.02)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(10)
