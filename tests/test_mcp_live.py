"""MCP through real processes: a server registered on the Tools page in Chromium (its tools
listed, the page accessible), and a job whose agents are granted an MCP tool, run by a real
Celery worker (threads pool) that calls the server started by the test."""

import pytest
from playwright.sync_api import expect

from agents import mcp
from agents.models import JOB_TERMINAL, Agent, Job, JobStatus, MCPServer, ToolCall

from .axe import axe_source, blocking, describe, run_axe
from .browser import announce, screenshot, user_page
from .cast import PASSWORD
from .mcp_server import mcp_server
from .stack import login, start_stack, submit, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def mcp_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """A stack of its own: its processes allow the test's MCP server on 127.0.0.1."""
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("mcp-stack"), exclusive=True, MCP_ALLOW_PRIVATE="true"
        )
    yield running
    running.stop()


@pytest.mark.browser
@pytest.mark.usefixtures("pages_closed")
def test_a_server_registered_on_the_tools_page_lists_its_tools(mcp_stack, seeded, browser, request):
    with mcp_server() as running:
        alice = user_page(browser, mcp_stack.base_url, "alice", bypass_csp=True)
        alice.get_by_role("navigation", name="Main").get_by_role("link", name="Tools").click()
        expect(alice.get_by_role("heading", name="Tools", exact=True)).to_be_visible()
        expect(alice.get_by_role("row", name="read_state")).to_be_visible()

        alice.get_by_label("Name", exact=True).fill("Demo tools")
        alice.get_by_label("Slug", exact=True).fill("demo")
        alice.get_by_label("URL", exact=True).fill(running.url)
        alice.get_by_role("button", name="Register server").click()

        expect(
            alice.get_by_role("alert").filter(has_text="Demo tools lists 3 tools.")
        ).to_be_visible()
        tools = alice.get_by_role("table", name="Tools of Demo tools")
        expect(tools.get_by_role("row")).to_have_count(4)  # the header and three tools
        expect(tools.get_by_role("row", name="demo/explode")).to_contain_text("Always fails")
        screenshot(alice, request, "tools-page")

        violations = run_axe(alice, axe_source())
        for line in describe("tools", violations):
            announce(request, line)
        assert not blocking(violations)

        alice.get_by_role("button", name="Fetch tools of Demo tools").click()
        expect(alice.get_by_role("alert").filter(has_text="lists 3 tools")).to_be_visible()
    assert running.calls == []  # listed, never called


@pytest.mark.stack
def test_a_job_run_by_a_worker_calls_a_granted_mcp_tool(
    mcp_stack, seeded, django_db_blocker, settings
):
    settings.MCP_ALLOW_PRIVATE = True  # for the fetch in this process
    with mcp_server() as running:
        with django_db_blocker.unblock():
            server = MCPServer.objects.create(name="Demo", slug="demo", url=running.url)
            mcp.fetch_tools(server)
            for agent in Agent.objects.all():
                if not agent.is_orchestrator:
                    agent.tools = ["demo/add"]
                    agent.save(update_fields=["tools"])
        client = login(mcp_stack.base_url, "alice", PASSWORD)
        submit(client, "MCP pipeline", "Add one and one with the tool, then review it.")

        job = wait_until(
            lambda: Job.objects.filter(title="MCP pipeline", status__in=JOB_TERMINAL).first(),
            "the job to end",
        )
    assert job.status == JobStatus.COMPLETED, job.error
    with django_db_blocker.unblock():
        calls = list(ToolCall.objects.filter(job=job))
        subtasks = job.subtasks.count()
    assert calls and len(calls) == subtasks
    assert {(c.name, c.result, c.error) for c in calls} == {("demo__add", "1 + 1 = 2", "")}
    assert running.calls == ["add"] * len(calls)
