"""MCP servers against a real one started here (streamable HTTP): its tool list fetched and
stored, a tool called, a failing tool and a server down as clear errors, its token read from
the environment and never shown, and only granted tools offered or run."""

import json

import pytest

from agents import mcp, tools
from agents.models import Job, MCPServer, SharedState

from .mcp_server import free_port, mcp_server

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-never-shown"


@pytest.fixture
def running():
    with mcp_server() as server:
        yield server


@pytest.fixture
def registered(running) -> MCPServer:
    return MCPServer.objects.create(name="Test tools", slug="demo", url=running.url)


def _ctx(*grants: str) -> tools.Context:
    job = Job.objects.create(title="J", description="d")
    SharedState.objects.create(job=job)
    return tools.Context(job_id=job.pk, author="coder/s1", grants=grants)


def test_fetching_stores_the_servers_tool_list(registered):
    found = mcp.fetch_tools(registered)
    registered.refresh_from_db()
    assert registered.tools == found
    assert [tool["name"] for tool in found] == ["add", "weather.today", "explode"]
    add = found[0]
    assert add["description"] == "Add two whole numbers."
    assert add["input_schema"]["required"] == ["a", "b"]
    assert add["input_schema"]["properties"]["a"]["type"] == "integer"
    assert registered.tools_fetched_at is not None and registered.fetch_error == ""


def test_a_tool_call_gives_the_text_of_its_result(registered, running):
    assert mcp.call_tool(registered, "add", {"a": 2, "b": 3}) == "2 + 3 = 5"
    assert running.calls == ["add"]


def test_an_error_result_is_a_tool_error_with_its_reason(registered):
    with pytest.raises(tools.ToolError, match="exploded on purpose: because"):
        mcp.call_tool(registered, "explode", {"reason": "because"})
    with pytest.raises(tools.ToolError, match="Unknown tool: nope"):
        mcp.call_tool(registered, "nope", {})


def test_a_server_down_is_a_clear_error_stored_on_it(settings):
    settings.MCP_TIMEOUT_S = 5
    server = MCPServer.objects.create(
        name="Gone", slug="gone", url=f"http://127.0.0.1:{free_port()}/mcp"
    )
    server.tools = [{"name": "old", "description": "", "input_schema": {}}]
    server.save()
    with pytest.raises(tools.ToolError, match="Could not connect to MCP server gone"):
        mcp.fetch_tools(server)
    server.refresh_from_db()
    assert server.fetch_error.startswith("Could not connect to MCP server gone")
    assert server.tools[0]["name"] == "old"  # the last listing is kept
    with pytest.raises(tools.ToolError, match="Could not connect"):
        mcp.call_tool(server, "old", {})


def test_a_fetch_that_works_again_clears_the_error(registered):
    registered.fetch_error = "Could not connect, earlier"
    registered.save()
    mcp.fetch_tools(registered)
    registered.refresh_from_db()
    assert registered.fetch_error == ""


def test_the_token_is_taken_from_the_environment_and_never_in_an_error(monkeypatch):
    with mcp_server(token=TOKEN) as running:
        server = MCPServer.objects.create(
            name="Guarded", slug="guarded", url=running.url, auth_env="MCP_GUARDED_TOKEN"
        )
        monkeypatch.delenv("MCP_GUARDED_TOKEN", raising=False)
        with pytest.raises(tools.ToolError) as missing:
            mcp.fetch_tools(server)
        assert "MCP_GUARDED_TOKEN" in str(missing.value) and "not set" in str(missing.value)
        assert running.authorizations == []  # nothing sent without it

        monkeypatch.setenv("MCP_GUARDED_TOKEN", "wrong-value")
        with pytest.raises(tools.ToolError) as refused:
            mcp.fetch_tools(server)
        assert "HTTP 401" in str(refused.value) and "wrong-value" not in str(refused.value)

        monkeypatch.setenv("MCP_GUARDED_TOKEN", TOKEN)
        assert len(mcp.fetch_tools(server)) == 3
        assert mcp.call_tool(server, "add", {"a": 1, "b": 1}) == "1 + 1 = 2"
        assert running.authorizations[-1] == f"Bearer {TOKEN}"
        server.refresh_from_db()
        stored = json.dumps(
            [getattr(server, f.attname) for f in MCPServer._meta.fields], default=str
        )
        assert TOKEN not in stored


def test_only_a_variable_named_mcp_may_hold_a_token(registered, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "baton's own")
    registered.auth_env = "SECRET_KEY"
    with pytest.raises(tools.ToolError, match="named MCP_") as refused:
        mcp.call_tool(registered, "add", {"a": 1, "b": 1})
    assert "baton's own" not in str(refused.value)


def test_granted_mcp_tools_are_offered_under_protocol_function_names(registered):
    mcp.fetch_tools(registered)
    grants = ("read_state", "demo/add", "demo/weather.today", "demo/gone", "other/add")
    offered = {s["function"]["name"]: s["function"] for s in tools.schemas(grants)}
    # A tool the server no longer lists, or a server not registered, is not offered.
    assert set(offered) == {"read_state", "demo__add", "demo__weather_today"}
    assert offered["demo__add"]["parameters"]["required"] == ["a", "b"]
    assert tools.grant_of("demo__weather_today", grants) == "demo/weather.today"
    assert tools.grant_of("read_state", grants) == "read_state"


def test_function_names_are_valid_and_unique():
    grants = ("a/b.c", "a/b_c", "x" * 40 + "/" + "y" * 40, "x" * 40 + "/" + "y" * 41)
    names = tools.function_names(grants)
    assert len(names) == 4 and set(names.values()) == set(grants)
    for name in names:
        assert tools.FUNCTION_NAME.search(name) is None and 1 <= len(name) <= 64


def test_a_granted_mcp_tool_runs_through_its_function_name(registered):
    outcome = tools.run("demo__add", json.dumps({"a": 4, "b": 5}), _ctx("demo/add"))
    assert (outcome.result, outcome.error) == ("4 + 5 = 9", "")

    failed = tools.run("demo__explode", json.dumps({"reason": "r"}), _ctx("demo/explode"))
    assert failed.result == "" and "exploded on purpose: r" in failed.error


def test_an_ungranted_tool_is_refused_not_run(registered, running):
    ctx = _ctx("demo/add")
    for name in ("demo__explode", "read_state", "demo/explode"):
        outcome = tools.run(name, json.dumps({"reason": "r"}), ctx)
        assert outcome.result == ""
        assert f"There is no tool {name!r} granted to this agent" in outcome.error
        assert "demo__add" in outcome.error
    assert running.calls == []


def test_a_disabled_servers_tools_are_neither_offered_nor_run(registered, running):
    mcp.fetch_tools(registered)
    registered.enabled = False
    registered.save()
    assert tools.schemas(("demo/add",)) == []
    assert "demo/add" not in dict(tools.available())
    outcome = tools.run("demo__add", json.dumps({"a": 1, "b": 2}), _ctx("demo/add"))
    assert "disabled" in outcome.error and running.calls == []


def test_available_lists_built_ins_and_fetched_mcp_tools(registered):
    assert [grant for grant, _ in tools.available()] == list(tools.BUILT_IN)
    mcp.fetch_tools(registered)
    choices = dict(tools.available())
    assert choices["demo/add"] == "Test tools / add: Add two whole numbers."
    assert "demo/explode" in choices and "read_state" in choices
