"""agents.actions.mcp: registering, editing, fetching and deleting an MCP server each write
one audit row; a change and its row commit together."""

import pytest
from django.db import IntegrityError

from agents import actions, mcp
from agents.models import Agent, MCPServer

from .auditing import AuditFailed, audit_rows, make_audit_fail
from .cast import person

pytestmark = pytest.mark.django_db

FIELDS = {"name": "Demo", "slug": "demo", "url": "https://tools.example.com/mcp"}
LISTED = [{"name": "add", "description": "", "input_schema": {"type": "object"}}]


@pytest.fixture
def server() -> MCPServer:
    return MCPServer.objects.create(**FIELDS)


def test_registering_is_one_row_and_a_taken_slug_writes_nothing():
    dave = person("dave")
    actions.register_mcp_server(FIELDS, user=dave)
    with pytest.raises(IntegrityError):
        actions.register_mcp_server({**FIELDS, "name": "Again"}, user=dave)
    assert list(MCPServer.objects.values_list("name", flat=True)) == ["Demo"]
    assert audit_rows() == [("register_mcp_server", "dave", "demo")]


def test_an_edit_is_one_row(server):
    edited = actions.edit_mcp_server(server, {**FIELDS, "name": "Renamed"}, user=person("dave"))
    assert MCPServer.objects.get(pk=server.pk).name == edited.name == "Renamed"
    assert audit_rows() == [("edit_mcp_server", "dave", "demo")]


def test_a_delete_is_one_row_naming_the_agents_that_lost_tools(server):
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding"], tools=["demo/add"])
    assert actions.delete_mcp_server(server, user=person("dave")) == ["coder"]
    assert not MCPServer.objects.exists() and Agent.objects.get().tools == []
    assert audit_rows() == [("delete_mcp_server", "dave", "demo; its tools taken from coder")]


def test_a_fetch_is_audited_with_what_came_of_it(server, monkeypatch):
    monkeypatch.setattr(mcp, "_run", lambda server, work: LISTED)
    bob = person("bob")
    assert actions.fetch_mcp_tools(server, user=bob) == LISTED

    def down(server, work):
        raise mcp.ServerError("MCP server demo did not answer.")

    monkeypatch.setattr(mcp, "_run", down)
    with pytest.raises(mcp.ServerError):
        actions.fetch_mcp_tools(server, user=bob)
    assert audit_rows() == [
        ("fetch_mcp_tools", "bob", "demo: 1 tools"),
        ("fetch_mcp_tools", "bob", "demo: MCP server demo did not answer."),
    ]


@pytest.mark.parametrize(
    "act",
    [
        lambda server: actions.register_mcp_server({**FIELDS, "slug": "other"}),
        lambda server: actions.edit_mcp_server(server, {**FIELDS, "name": "Renamed"}),
        lambda server: actions.delete_mcp_server(server),
    ],
    ids=["register", "edit", "delete"],
)
def test_a_failed_audit_undoes_the_change(server, monkeypatch, act):
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding"], tools=["demo/add"])
    before = (list(MCPServer.objects.values()), list(Agent.objects.values("tools")))
    make_audit_fail(monkeypatch)
    with pytest.raises(AuditFailed):
        act(server)
    assert (list(MCPServer.objects.values()), list(Agent.objects.values("tools"))) == before


def test_the_page_and_the_admin_write_through_the_actions(client, admin_client, monkeypatch):
    monkeypatch.setattr(mcp, "check_url", lambda url, within=None: None)  # no DNS here
    client.force_login(person("dave"))
    client.post("/tools/servers/new/", {**FIELDS, "enabled": ""})
    server = MCPServer.objects.get(slug="demo")
    client.post(f"/tools/servers/{server.slug}/delete/")
    admin_client.post("/admin/agents/mcpserver/add/", {**FIELDS, "slug": "again"})
    server = MCPServer.objects.get(slug="again")
    admin_client.post(f"/admin/agents/mcpserver/{server.pk}/delete/", {"post": "yes"})
    assert [row[0] for row in audit_rows()] == [
        "register_mcp_server",
        "delete_mcp_server",
        "register_mcp_server",
        "delete_mcp_server",
    ]
