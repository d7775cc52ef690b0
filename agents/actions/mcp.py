"""Registering, editing, fetching and deleting MCP servers. `fields` is a validated
MCPServerForm's cleaned data, from the Tools page or the admin."""

from __future__ import annotations

from django.db import transaction

from .. import mcp
from ..audit import audit
from ..models import MCPServer


def register_mcp_server(fields: dict, *, user=None) -> MCPServer:
    """Raises IntegrityError (nothing written) when the slug is taken meanwhile."""
    with transaction.atomic():
        server = MCPServer.objects.create(**fields)
        audit("register_mcp_server", actor=user, detail=server.slug)
    return server


def edit_mcp_server(server: MCPServer, fields: dict, *, user=None) -> MCPServer:
    with transaction.atomic():
        server = MCPServer.objects.select_for_update().get(pk=server.pk)
        for name, value in fields.items():
            setattr(server, name, value)
        server.save()  # a URL changed drops the token variable (MCPServer.save)
        audit("edit_mcp_server", actor=user, detail=server.slug)
    return server


def fetch_mcp_tools(server: MCPServer, *, user=None) -> list[dict]:
    """Fetch and store the server's tool list (or why it failed, raising ServerError).
    The network call runs outside any transaction; the row it stores is one UPDATE, and the
    audit row follows it, saying what came of it."""
    try:
        found = mcp.fetch_tools(server)
    except mcp.ServerError as exc:
        audit("fetch_mcp_tools", actor=user, detail=f"{server.slug}: {exc}")
        raise
    audit("fetch_mcp_tools", actor=user, detail=f"{server.slug}: {len(found)} tools")
    return found


def delete_mcp_server(server: MCPServer, *, user=None) -> list[str]:
    """Delete the server and its grants; the slugs of the agents that lost tools."""
    with transaction.atomic():
        changed = mcp.delete_server(server)
        detail = f"{server.slug}; its tools taken from {', '.join(changed)}" if changed else ""
        audit("delete_mcp_server", actor=user, detail=detail or server.slug)
    return changed
