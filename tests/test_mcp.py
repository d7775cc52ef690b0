"""MCP servers against a real one started here (streamable HTTP): its tool list fetched and
stored, a tool called, a failing tool and a server down as clear errors, its token read from
the environment and never shown, and only granted tools offered or run; the Tools page and
the admin; and a subtask on the simulator calling an MCP tool through the tool loop."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from agents import enqueue, mcp, steps, tools
from agents.models import (
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    LLMCall,
    MCPServer,
    SharedState,
    Subtask,
    SubtaskStatus,
    ToolCall,
)

from .cast import person
from .inprocess import simulated_llm
from .mcp_server import free_port, mcp_server

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-never-shown"


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.MCP_ALLOW_PRIVATE = True  # the test's server listens on 127.0.0.1


@pytest.fixture
def allow_token(settings):
    """Binds a token variable to a URL's origin, as the deployer does in MCP_TOKEN_ORIGINS."""

    def allow(variable: str, url: str) -> None:
        settings.MCP_TOKEN_ORIGINS = {**settings.MCP_TOKEN_ORIGINS, variable: [url]}

    return allow


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
    with pytest.raises(mcp.ServerError, match="exploded on purpose: because"):
        mcp.call_tool(registered, "explode", {"reason": "because"})
    with pytest.raises(mcp.ServerError, match="Unknown tool: nope"):
        mcp.call_tool(registered, "nope", {})


def test_a_server_down_is_a_clear_error_stored_on_it(settings):
    settings.MCP_TIMEOUT_S = 5
    server = MCPServer.objects.create(
        name="Gone", slug="gone", url=f"http://127.0.0.1:{free_port()}/mcp"
    )
    server.tools = [{"name": "old", "description": "", "input_schema": {}}]
    server.save()
    with pytest.raises(mcp.ServerError, match="Could not connect to MCP server gone"):
        mcp.fetch_tools(server)
    server.refresh_from_db()
    assert server.fetch_error.startswith("Could not connect to MCP server gone")
    assert server.tools[0]["name"] == "old"  # the last listing is kept
    with pytest.raises(mcp.ServerError, match="Could not connect"):
        mcp.call_tool(server, "old", {})


def test_a_fetch_that_works_again_clears_the_error(registered):
    registered.fetch_error = "Could not connect, earlier"
    registered.save()
    mcp.fetch_tools(registered)
    registered.refresh_from_db()
    assert registered.fetch_error == ""


def test_the_token_is_taken_from_the_environment_and_never_in_an_error(monkeypatch, allow_token):
    with mcp_server(token=TOKEN) as running:
        allow_token("MCP_GUARDED_TOKEN", running.url)
        server = MCPServer.objects.create(
            name="Guarded", slug="guarded", url=running.url, auth_env="MCP_GUARDED_TOKEN"
        )
        monkeypatch.delenv("MCP_GUARDED_TOKEN", raising=False)
        with pytest.raises(mcp.ServerError) as missing:
            mcp.fetch_tools(server)
        assert "MCP_GUARDED_TOKEN" in str(missing.value) and "not set" in str(missing.value)
        assert running.authorizations == []  # nothing sent without it

        monkeypatch.setenv("MCP_GUARDED_TOKEN", "wrong-value")
        with pytest.raises(mcp.ServerError) as refused:
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


def test_a_server_quoting_the_token_back_has_it_withheld(monkeypatch, allow_token):
    monkeypatch.setenv("MCP_GUARDED_TOKEN", TOKEN)
    with mcp_server(token=TOKEN, extra=True) as running:
        allow_token("MCP_GUARDED_TOKEN", running.url)
        server = MCPServer.objects.create(
            name="Guarded", slug="guarded", url=running.url, auth_env="MCP_GUARDED_TOKEN"
        )
        result = mcp.call_tool(server, "echo_auth", {"fail": False})
        with pytest.raises(mcp.ServerError) as failed:
            mcp.call_tool(server, "echo_auth", {"fail": True})
    assert result == "you sent 'Bearer [token withheld]'"
    assert "you sent 'Bearer [token withheld]'" in str(failed.value)
    assert TOKEN not in str(failed.value)


def test_a_tool_that_takes_too_long_is_an_error_not_a_hang(settings):
    settings.MCP_TIMEOUT_S = 0.5
    with mcp_server(extra=True) as running:
        server = MCPServer.objects.create(name="Slow", slug="slow", url=running.url)
        with pytest.raises(mcp.ServerError, match="slow .* did not answer within 0.5 s"):
            mcp.call_tool(server, "wait", {"seconds": 3})


def test_only_a_variable_named_mcp_may_hold_a_token(registered, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "baton's own")
    registered.auth_env = "SECRET_KEY"
    with pytest.raises(mcp.ServerError, match="named MCP_") as refused:
        mcp.call_tool(registered, "add", {"a": 1, "b": 1})
    assert "baton's own" not in str(refused.value)


def test_a_server_on_a_private_network_is_refused_unless_allowed(registered, running, settings):
    settings.MCP_ALLOW_PRIVATE = False
    with pytest.raises(mcp.ServerError, match="127.0.0.1, a loopback address") as refused:
        mcp.fetch_tools(registered)
    assert "MCP_ALLOW_PRIVATE" in str(refused.value)
    with pytest.raises(mcp.ServerError, match="loopback"):
        mcp.call_tool(registered, "add", {"a": 1, "b": 1})
    assert running.authorizations == []  # nothing was sent


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
    # Grants stored badly (not names) are skipped, not a crash.
    assert tools.function_names([5, "", None, "read_state"]) == {"read_state": "read_state"}


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


# The Tools page and the admin.


def test_the_page_lists_built_ins_and_fetched_tools_escaped(client, viewer, registered):
    mcp.fetch_tools(registered)
    page = client.get(reverse("dash-tools"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "read_state" in html and "http_get" in html
    assert "demo/add" in html and "Add two whole numbers." in html
    # A server's descriptions are its own text: escaped.
    assert "&lt;b&gt;(made up)&lt;/b&gt;" in html and "<b>(made up)" not in html
    # A viewer reads; she neither registers nor fetches.
    assert "Register server" not in html and "Fetch tools" not in html
    assert client.post(reverse("dash-mcp-fetch", args=["demo"])).status_code == 403
    assert client.post(reverse("dash-mcp-create"), {"name": "x"}).status_code == 403


def test_the_page_needs_a_role(client):
    client.force_login(person("eve"))
    assert client.get(reverse("dash-tools")).status_code == 403


def test_registering_fetches_its_tools_and_never_shows_the_token(
    client, manager, monkeypatch, allow_token
):
    monkeypatch.setenv("MCP_DEMO_TOKEN", TOKEN)
    with mcp_server(token=TOKEN) as running:
        allow_token("MCP_DEMO_TOKEN", running.url)
        form = {
            "name": "Demo",
            "slug": "demo",
            "url": running.url,
            "auth_env": "MCP_DEMO_TOKEN",
            "enabled": "on",
        }
        response = client.post(reverse("dash-mcp-create"), form, follow=True)
    html = response.content.decode()
    server = MCPServer.objects.get(slug="demo")
    assert [tool["name"] for tool in server.tools] == ["add", "weather.today", "explode"]
    assert "Demo lists 3 tools." in html and "demo/explode" in html
    assert "MCP_DEMO_TOKEN" in html and TOKEN not in html
    assert AuditEntry.objects.filter(action="register_mcp_server", detail="demo").exists()

    monkeypatch.delenv("MCP_DEMO_TOKEN")
    html = client.get(reverse("dash-tools")).content.decode()
    assert "not set" in html and TOKEN not in html


def test_a_token_typed_as_the_variable_is_refused_and_not_shown_again(client, manager):
    form = {"name": "Demo", "slug": "demo", "url": "http://127.0.0.1:9/mcp", "auth_env": TOKEN}
    response = client.post(reverse("dash-mcp-create"), form)
    assert response.status_code == 400
    assert "environment variable named MCP_" in response.content.decode()
    assert TOKEN not in response.content.decode()
    assert not MCPServer.objects.exists()


def test_a_url_with_credentials_or_on_a_private_network_is_refused(client, manager, settings):
    form = {"name": "Demo", "slug": "demo", "url": f"https://user:{TOKEN}@tools.example.com/mcp"}
    response = client.post(reverse("dash-mcp-create"), form)
    assert response.status_code == 400
    assert "no credentials in the URL" in response.content.decode()
    assert TOKEN not in response.content.decode()

    settings.MCP_ALLOW_PRIVATE = False
    form["url"] = "http://127.0.0.1:9/mcp"
    response = client.post(reverse("dash-mcp-create"), form)
    assert response.status_code == 400
    assert "a loopback address" in response.content.decode()
    assert not MCPServer.objects.exists()


def test_fetch_shows_why_it_failed(client, manager, settings):
    settings.MCP_TIMEOUT_S = 5
    MCPServer.objects.create(name="Gone", slug="gone", url=f"http://127.0.0.1:{free_port()}/mcp")
    html = client.post(reverse("dash-mcp-fetch", args=["gone"]), follow=True).content.decode()
    assert "Last fetch failed: Could not connect to MCP server gone" in html


def test_editing_keeps_the_slug_grants_name(client, manager, registered):
    url = reverse("dash-mcp-edit", args=["demo"])
    assert client.get(url).status_code == 200
    form = {"name": "Renamed", "slug": "other", "url": registered.url, "auth_env": ""}
    assert client.post(url, form).status_code == 302
    registered.refresh_from_db()
    assert (registered.name, registered.slug, registered.enabled) == ("Renamed", "demo", False)


def test_deleting_a_server_takes_its_tools_out_of_grants(client, manager, registered):
    agent = Agent.objects.create(
        name="Coder", slug="coder", specialties=["coding"], tools=["read_state", "demo/add"]
    )
    client.post(reverse("dash-mcp-delete", args=["demo"]))
    agent.refresh_from_db()
    assert agent.tools == ["read_state"]
    assert not MCPServer.objects.exists()


def test_the_admin_fetches_and_never_shows_the_token(admin_client, monkeypatch, allow_token):
    monkeypatch.setenv("MCP_DEMO_TOKEN", TOKEN)
    with mcp_server(token=TOKEN) as running:
        allow_token("MCP_DEMO_TOKEN", running.url)
        server = MCPServer.objects.create(
            name="Demo", slug="demo", url=running.url, auth_env="MCP_DEMO_TOKEN"
        )
        changelist = reverse("admin:agents_mcpserver_changelist")
        admin_client.post(changelist, {"action": "fetch", "_selected_action": [server.pk]})
    server.refresh_from_db()
    assert len(server.tools) == 3
    for url in (changelist, reverse("admin:agents_mcpserver_change", args=[server.pk])):
        html = admin_client.get(url).content.decode()
        assert "MCP_DEMO_TOKEN" in html and TOKEN not in html


# End to end: an agent granted an MCP tool runs a subtask on the simulator.


@pytest.fixture
def simulated(settings, monkeypatch):
    monkeypatch.setattr(enqueue, "send_now", lambda name, *args, **opts: None)
    with simulated_llm(settings) as server:
        yield server


def _subtask_of(grants: list[str]) -> Subtask:
    agent = Agent.objects.create(
        name="Researcher", slug="researcher", specialties=["research"], tools=grants
    )
    job = Job.objects.create(
        title="Add up",
        description="Use the tools.",
        status=JobStatus.WORKING,
        planned_at=timezone.now(),
    )
    SharedState.objects.create(job=job)
    return Subtask.objects.create(
        job=job,
        key="research",
        type="research",
        payload={"description": "add"},
        agent=agent,
        status=SubtaskStatus.QUEUED,
    )


def _run(sub: Subtask, capture) -> Subtask:
    with capture(execute=True):
        steps.run_subtask(sub.pk)
    return Subtask.objects.get(pk=sub.pk)


def test_the_simulator_calls_a_granted_mcp_tool_and_the_trace_holds_its_result(
    simulated, registered, running, django_capture_on_commit_callbacks
):
    mcp.fetch_tools(registered)
    sub = _run(_subtask_of(["demo/add"]), django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert tool_call.name == "demo__add"
    assert json.loads(tool_call.arguments) == {"a": 1, "b": 1}
    assert (tool_call.result, tool_call.error) == ("1 + 1 = 2", "")
    assert tool_call.status == ToolCall.Status.DONE
    assert running.calls == ["add"]
    assert "1 + 1 = 2" in sub.result  # the simulator quotes the tool's answer
    asked = LLMCall.objects.filter(subtask=sub).order_by("pk").first()
    assert [c["function"]["name"] for c in asked.tool_calls] == ["demo__add"]


def test_a_failing_mcp_tool_is_an_error_result_for_the_model(
    simulated, registered, django_capture_on_commit_callbacks
):
    mcp.fetch_tools(registered)
    sub = _run(_subtask_of(["demo/explode"]), django_capture_on_commit_callbacks)

    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    (tool_call,) = ToolCall.objects.filter(subtask=sub)
    assert tool_call.result == ""
    assert "exploded on purpose: simulated" in tool_call.error
    assert "exploded on purpose" in sub.result


def test_the_demo_command_serves_tools_behind_its_token(monkeypatch, allow_token):
    port = free_port()
    allow_token("MCP_DEMO_TOKEN", f"http://127.0.0.1:{port}")
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    env = {**os.environ, "MCP_DEMO_TOKEN": TOKEN}
    command = [sys.executable, str(manage), "mcp_demo_server", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--token-env", "MCP_DEMO_TOKEN"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline().strip()
        assert line == f"MCP demo server at http://127.0.0.1:{port}/mcp (token required)"
        server = MCPServer.objects.create(
            name="Demo", slug="demo", url=f"http://127.0.0.1:{port}/mcp", auth_env="MCP_DEMO_TOKEN"
        )
        with pytest.raises(mcp.ServerError, match="MCP_DEMO_TOKEN"):
            mcp.fetch_tools(server)  # not set in this process

        monkeypatch.setenv("MCP_DEMO_TOKEN", TOKEN)
        names = []
        for _ in range(100):  # the server may still be starting
            try:
                names = [tool["name"] for tool in mcp.fetch_tools(server)]
                break
            except mcp.ServerError as exc:
                assert "Could not connect" in str(exc)
                time.sleep(0.1)
        assert names == ["word_count", "add", "utc_now", "fail"]
        assert mcp.call_tool(server, "word_count", {"text": "one two"}) == "2 words, 7 characters"
        with pytest.raises(mcp.ServerError, match="failed as asked: why"):
            mcp.call_tool(server, "fail", {"reason": "why"})
        monkeypatch.setenv("MCP_DEMO_TOKEN", "wrong")
        with pytest.raises(mcp.ServerError, match="HTTP 401"):
            mcp.fetch_tools(server)
    finally:
        process.terminate()
        process.wait(timeout=10)
