"""Agents through the API: live metrics for readers; agent managers register and edit."""

import pytest

from agents.models import Agent, AuditEntry, Job, LLMCall, Subtask

from .api_support import PROBLEM, token_client

pytestmark = pytest.mark.django_db

NEW_AGENT = {"name": "Translator", "slug": "translator", "specialties": ["Translation"]}


@pytest.fixture
def manager(users):
    return token_client(users["manager"])


@pytest.fixture
def coder() -> Agent:
    agent = Agent.objects.create(
        name="Coder", slug="coder", specialties=["coding"], completed_count=3, failed_count=1
    )
    job = Job.objects.create(title="t", description="d" * 20, status="working")
    Subtask.objects.create(job=job, key="a", type="coding", agent=agent, status="working")
    LLMCall.objects.create(job=job, agent=agent, purpose="subtask", model="m", latency_s=2.0)
    return agent


def test_agents_list_with_their_live_metrics(users, coder):
    response = token_client(users["viewer"]).get("/api/v1/agents")
    assert response.status_code == 200
    (agent,) = response.json()
    assert (agent["slug"], agent["load"], agent["success_rate"]) == ("coder", 1, 0.75)
    assert (agent["completed_count"], agent["failed_count"]) == (3, 1)
    assert agent["series"]["calls"][-1] == 1 and agent["series"]["latency"][-1] == 2.0
    assert len(agent["series"]["calls"]) == 12


def test_an_agent_manager_registers_an_agent(manager, users):
    response = manager.post("/api/v1/agents", {**NEW_AGENT, "temperature": 0.2})
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["slug"] == "translator" and data["specialties"] == ["translation"]
    assert data["load"] == 0 and data["enabled"] is True and data["temperature"] == 0.2
    agent = Agent.objects.get(slug="translator")
    assert AuditEntry.objects.filter(
        agent=agent, action="register_agent", actor=users["manager"]
    ).exists()


def test_the_agent_forms_rules_apply(manager, coder):
    response = manager.post(
        "/api/v1/agents", {**NEW_AGENT, "slug": "coder", "specialties": [], "temperature": 3}
    )
    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"#/temperature"}  # types first: the form's rules come after
    response = manager.post("/api/v1/agents", {**NEW_AGENT, "slug": "coder", "specialties": []})
    assert {e["pointer"] for e in response.json()["errors"]} == {"#/slug", "#/specialties"}
    assert Agent.objects.count() == 1


def test_an_agent_is_edited_keeping_what_is_not_sent(manager, coder):
    response = manager.patch("/api/v1/agents/coder", {"model": "gpt-4.1", "max_concurrency": 2})
    assert response.status_code == 200, response.content
    coder.refresh_from_db()
    assert (coder.model, coder.max_concurrency, coder.specialties) == ("gpt-4.1", 2, ["coding"])
    assert AuditEntry.objects.filter(agent=coder, action="edit_agent").exists()


def test_disabling_through_an_edit_is_audited_as_such(manager, coder):
    manager.patch("/api/v1/agents/coder", {"enabled": False})
    assert AuditEntry.objects.filter(agent=coder, action="disable_agent").exists()


def test_an_agent_is_disabled_and_enabled(manager, coder):
    response = manager.post("/api/v1/agents/coder/disable")
    assert response.status_code == 200 and response.json()["enabled"] is False
    response = manager.post("/api/v1/agents/coder/enable")
    assert response.status_code == 200 and response.json()["enabled"] is True
    actions = list(AuditEntry.objects.filter(agent=coder).values_list("action", flat=True))
    assert actions == ["enable_agent", "disable_agent"]


def test_an_unknown_agent_is_a_404(manager):
    for response in (
        manager.get("/api/v1/agents/ghost"),
        manager.patch("/api/v1/agents/ghost", {"model": "x"}),
        manager.post("/api/v1/agents/ghost/enable"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == "No agent ghost."


def test_an_operator_cannot_touch_agents(users, coder):
    operator = token_client(users["operator"])
    assert operator.post("/api/v1/agents", NEW_AGENT).status_code == 403
    assert operator.patch("/api/v1/agents/coder", {"model": "x"}).status_code == 403
    assert operator.post("/api/v1/agents/coder/disable").status_code == 403
    coder.refresh_from_db()
    assert coder.enabled and coder.model != "x"
