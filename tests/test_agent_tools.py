"""An agent's tools, step cap and approval flag: set on its page, in the admin and through
the API, checked against the tools there are; the seeded researcher reads the shared state,
so a job of the default team on the offline model shows a tool call in its trace."""

import pytest
from django.core.management import call_command

from agents import team
from agents.models import Agent, JobStatus, MCPServer, Scorer, ToolCall

from .api_support import token_client
from .cast import person
from .inprocess import run_job

pytestmark = pytest.mark.django_db

UNKNOWN = "There is no tool nope: grant a built-in tool or a tool of a registered MCP server"


@pytest.fixture
def coder() -> Agent:
    return Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])


def edit_form(agent: Agent, **changes) -> dict:
    values = {
        "name": agent.name,
        "slug": agent.slug,
        "specialties": ", ".join(agent.specialties),
        "model": agent.model,
        "system_prompt": agent.system_prompt,
        "temperature": agent.temperature,
        "max_tokens": agent.max_tokens,
        "max_concurrency": agent.max_concurrency,
        "enabled": "on",
        "max_tool_steps": agent.max_tool_steps,
    }
    return {**values, **changes}


def test_the_edit_page_offers_each_tool_as_a_checkbox(client, manager, coder):
    MCPServer.objects.create(
        name="Docs",
        slug="docs",
        url="http://127.0.0.1:1/mcp",
        tools=[{"name": "search", "description": "Search the docs.\nMore."}],
    )
    html = client.get(f"/agents/{coder.slug}/edit/").content.decode()

    for grant in ("read_state", "write_state", "http_get", "docs/search"):
        assert f'type="checkbox" name="tools" value="{grant}"' in html
    assert "Docs / search: Search the docs." in html
    assert "<legend>Tools</legend>" in html
    assert 'name="max_tool_steps"' in html and 'name="needs_approval"' in html


def test_an_agent_manager_grants_tools_on_the_page(client, manager, coder):
    data = edit_form(coder, tools=["read_state", "http_get"], max_tool_steps=3)
    data["needs_approval"] = "on"
    response = client.post(f"/agents/{coder.slug}/edit/", data)

    assert response.status_code == 302
    coder.refresh_from_db()
    assert coder.tools == ["read_state", "http_get"]
    assert (coder.max_tool_steps, coder.needs_approval) == (3, True)


def test_an_unknown_tool_is_refused_and_nothing_is_stored(client, manager, coder):
    response = client.post(f"/agents/{coder.slug}/edit/", edit_form(coder, tools=["nope"]))

    assert response.status_code == 400
    assert UNKNOWN in response.content.decode()
    coder.refresh_from_db()
    assert coder.tools == []


def test_the_step_cap_is_bounded(client, manager, coder):
    response = client.post(f"/agents/{coder.slug}/edit/", edit_form(coder, max_tool_steps=0))

    assert response.status_code == 400
    coder.refresh_from_db()
    assert coder.max_tool_steps == 8


def test_a_grant_no_longer_offered_is_kept_until_unchecked(client, manager, coder):
    Agent.objects.filter(pk=coder.pk).update(tools=["gone/tool", "read_state"])
    coder.refresh_from_db()
    html = client.get(f"/agents/{coder.slug}/edit/").content.decode()
    assert "gone/tool (not offered now)" in html

    response = client.post(f"/agents/{coder.slug}/edit/", edit_form(coder, tools=["gone/tool"]))
    assert response.status_code == 302
    coder.refresh_from_db()
    assert coder.tools == ["gone/tool"]


def test_the_admin_grants_tools_with_checkboxes(admin_client, coder):
    url = f"/admin/agents/agent/{coder.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert 'type="checkbox" name="tools" value="read_state"' in html

    data = edit_form(coder, tools=["write_state"], max_tool_steps=4)
    data["specialties"] = '["coding"]'  # JSON in the admin
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    coder.refresh_from_db()
    assert (coder.tools, coder.max_tool_steps) == (["write_state"], 4)

    response = admin_client.post(url, {**data, "tools": ["nope"]})
    assert response.status_code == 200 and "There is no tool nope" in response.content.decode()
    coder.refresh_from_db()
    assert coder.tools == ["write_state"]


def test_the_api_reads_and_sets_tools(coder):
    manager = token_client(person("dave"))
    response = manager.patch(
        f"/api/v1/agents/{coder.slug}",
        {"tools": ["read_state"], "max_tool_steps": 2, "needs_approval": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["tools"], data["max_tool_steps"], data["needs_approval"]) == (
        ["read_state"],
        2,
        True,
    )

    response = manager.patch(f"/api/v1/agents/{coder.slug}", {"tools": ["nope"]}, format="json")
    assert response.status_code == 422
    assert UNKNOWN in str(response.json())
    coder.refresh_from_db()
    assert coder.tools == ["read_state"]

    # Omitted, the grants stay.
    response = manager.patch(f"/api/v1/agents/{coder.slug}", {"temperature": 0.1}, format="json")
    assert response.status_code == 200 and response.json()["tools"] == ["read_state"]


def test_seeding_grants_the_researcher_read_state_unless_told_not_to():
    call_command("seed_agents", "--no-tools", stdout=None)
    assert not Agent.objects.exclude(tools=[]).exists()

    Agent.objects.all().delete()
    call_command("seed_agents", stdout=None)
    assert dict(Agent.objects.exclude(tools=[]).values_list("slug", "tools")) == {
        "researcher": ["read_state"]
    }


def test_a_job_of_the_seeded_team_on_the_offline_model_shows_a_tool_call(
    client, viewer, settings, sent, django_capture_on_commit_callbacks
):
    settings.LLM_API_KEY = ""  # the offline model
    settings.REDIS_URL = ""
    team.seed(tools=True)
    job = run_job(sent, django_capture_on_commit_callbacks)

    assert job.status == JobStatus.COMPLETED, job.error
    tool_call = ToolCall.objects.get(job=job)
    assert (tool_call.name, tool_call.subtask.key) == ("read_state", "research")
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'id="tool-call-{tool_call.pk}"' in html and "<code>read_state</code>" in html


def test_a_form_that_leaves_the_cap_out_keeps_it(client, manager, coder):
    Agent.objects.filter(pk=coder.pk).update(max_tool_steps=5)
    coder.refresh_from_db()
    data = edit_form(coder, temperature=0.2)
    del data["max_tool_steps"]
    assert client.post(f"/agents/{coder.slug}/edit/", data).status_code == 302
    data["max_tool_steps"] = ""
    assert client.post(f"/agents/{coder.slug}/edit/", data).status_code == 302
    coder.refresh_from_db()
    assert (coder.max_tool_steps, coder.temperature) == (5, 0.2)


def test_seeding_makes_the_two_default_scorers_once(db):
    call_command("seed_agents", "--if-empty", stdout=None)
    names = sorted(Scorer.objects.values_list("name", flat=True))
    assert names == ["LLM judge (helpfulness)", "Not empty"]
    Scorer.objects.filter(slug="not-empty").delete()
    call_command("seed_agents", "--if-empty", stdout=None)  # one is left: none is added
    assert list(Scorer.objects.values_list("name", flat=True)) == ["LLM judge (helpfulness)"]
