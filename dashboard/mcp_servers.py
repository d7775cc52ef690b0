"""The Tools page: the built-in tools and the MCP servers agents may be granted tools of.
Read like the agents page; a server is registered like an agent (add_agent) and edited,
fetched and deleted like one (change_agent). A server's token is named by an environment
variable, and the page says only whether that variable is set."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents import actions, mcp, tools
from agents.forms import MCPServerForm
from agents.models import MCPServer

from .access import read_required


def _page(request: HttpRequest, form: MCPServerForm | None, status: int = 200) -> HttpResponse:
    servers = list(MCPServer.objects.all())
    for server in servers:
        server.token_set = mcp.auth_env_set(server)
    context = {"built_in": tools.BUILT_IN.values(), "servers": servers, "form": form}
    return render(request, "dashboard/tools.html", context, status=status)


def _fetch(request: HttpRequest, server: MCPServer) -> None:
    try:
        found = actions.fetch_mcp_tools(server, user=request.user)
    except mcp.ServerError as exc:
        messages.error(request, f"Could not fetch the tools of {server.name}: {exc}")
    else:
        messages.success(request, f"{server.name} lists {len(found)} tools.")


@read_required("agents")
def tool_list(request: HttpRequest) -> HttpResponse:
    form = MCPServerForm() if request.user.has_perm("agents.add_agent") else None
    return _page(request, form)


@login_required
@require_POST
@permission_required("agents.add_agent", raise_exception=True)
def server_create(request: HttpRequest) -> HttpResponse:
    form = MCPServerForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    server = actions.register_mcp_server(form.cleaned_data, user=request.user)
    if server.enabled:
        _fetch(request, server)
    return redirect("dash-tools")


@login_required
@permission_required("agents.change_agent", raise_exception=True)
def server_edit(request: HttpRequest, slug: str) -> HttpResponse:
    server = get_object_or_404(MCPServer, slug=slug)
    form = MCPServerForm(request.POST or None, instance=server)
    if request.method == "POST" and form.is_valid():
        server = actions.edit_mcp_server(server, form.cleaned_data, user=request.user)
        messages.success(request, f"{server.name} saved.")
        if dropped := form.dropped_message():
            messages.info(request, dropped)
        return redirect("dash-tools")
    status = 400 if request.method == "POST" else 200
    context = {"server": server, "form": form}
    return render(request, "dashboard/mcp_server_edit.html", context, status=status)


@login_required
@require_POST
@permission_required("agents.change_agent", raise_exception=True)
def server_fetch(request: HttpRequest, slug: str) -> HttpResponse:
    _fetch(request, get_object_or_404(MCPServer, slug=slug))
    return redirect("dash-tools")


@login_required
@require_POST
@permission_required("agents.change_agent", raise_exception=True)
def server_delete(request: HttpRequest, slug: str) -> HttpResponse:
    server = get_object_or_404(MCPServer, slug=slug)
    changed = actions.delete_mcp_server(server, user=request.user)
    note = f"; its tools are no longer granted to {', '.join(changed)}" if changed else ""
    messages.success(request, f"{server.name} deleted{note}.")
    return redirect("dash-tools")
