"""MCP servers in the admin: the dashboard's form (a token's variable named MCP_… and allowed
the server's origin, never a token; a URL changed drops it), the tool list as last fetched
read only, and an action to fetch it again."""

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from . import actions, mcp
from .admin_base import BatonAdmin
from .forms import MCPServerForm
from .models import MCPServer


@admin.register(MCPServer)
class MCPServerAdmin(BatonAdmin):
    form = MCPServerForm
    list_display = ("name", "slug", "url", "enabled", "token", "tool_count", "tools_fetched_at")
    list_filter = ("enabled",)
    search_fields = ("name", "slug", "url")
    readonly_fields = ("tool_names", "tools_fetched_at", "fetch_error", "created_at", "updated_at")
    fields = (*MCPServerForm._meta.fields, *readonly_fields)
    actions = ["fetch"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="token")
    def token(self, server: MCPServer) -> str:
        if not server.auth_env:
            return "none"
        return f"{server.auth_env}: {'set' if mcp.auth_env_set(server) else 'not set'}"

    @admin.display(description="tools")
    def tool_count(self, server: MCPServer) -> int:
        return len(server.tools)

    @admin.display(description="tools as last fetched")
    def tool_names(self, server: MCPServer) -> str:
        return ", ".join(f"{server.slug}/{tool['name']}" for tool in server.tools) or "none"

    @admin.action(description="Fetch the tool lists of the selected servers")
    def fetch(self, request: HttpRequest, queryset: QuerySet) -> None:
        for server in queryset:
            try:
                found = actions.fetch_mcp_tools(server, user=request.user)
            except mcp.ServerError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{server.name} lists {len(found)} tools.")

    def save_model(self, request: HttpRequest, obj: MCPServer, form, change: bool) -> None:
        if change:
            actions.edit_mcp_server(obj, form.cleaned_data, user=request.user)
        else:
            obj.pk = actions.register_mcp_server(form.cleaned_data, user=request.user).pk
        if dropped := form.dropped_message():
            self.message_user(request, dropped, messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: MCPServer) -> None:
        actions.delete_mcp_server(obj, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for server in queryset:
            self.delete_model(request, server)
