"""agents.actions.agents: registering, editing, enabling and disabling an agent are each one
transaction with one audit row, whichever face asks."""

import pytest
from django.db import IntegrityError

from agents import actions
from agents.models import Agent

from .api_support import token_client
from .auditing import AuditFailed, audit_rows, make_audit_fail
from .cast import person

pytestmark = pytest.mark.django_db

FIELDS = {"name": "Translator", "slug": "translator", "specialties": ["translation"]}


def test_an_enabled_agent_is_registered_with_one_audit_row():
    agent = actions.register_agent(FIELDS, user=person("dave"))
    assert agent.enabled and Agent.objects.get(slug="translator") == agent
    assert audit_rows() == [("register_agent", "dave", "translator")]


def test_a_taken_slug_registers_nothing_and_audits_nothing():
    actions.register_agent(FIELDS)
    with pytest.raises(IntegrityError):
        actions.register_agent({**FIELDS, "name": "Another"}, user=person("dave"))
    assert list(Agent.objects.values_list("name", flat=True)) == ["Translator"]
    assert audit_rows() == [("register_agent", None, "translator")]


def test_an_edit_is_audited_once_naming_what_changed():
    agent = Agent.objects.create(**FIELDS)
    edited = actions.edit_agent(
        agent, {**FIELDS, "model": "gpt-4.1", "max_concurrency": 2}, user=person("dave")
    )
    assert (edited.model, edited.max_concurrency) == ("gpt-4.1", 2)
    assert audit_rows() == [("edit_agent", "dave", "translator: model, max_concurrency")]


def test_an_edit_that_disables_is_one_disable_row():
    agent = Agent.objects.create(**FIELDS)
    actions.edit_agent(agent, {**FIELDS, "enabled": False}, user=person("dave"))
    assert not Agent.objects.get(pk=agent.pk).enabled
    assert audit_rows() == [("disable_agent", "dave", "translator")]


def test_an_edit_to_a_taken_slug_changes_nothing():
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    agent = Agent.objects.create(**FIELDS)
    with pytest.raises(IntegrityError):
        actions.edit_agent(agent, {**FIELDS, "slug": "coder", "model": "gpt-4.1"})
    agent.refresh_from_db()
    assert (agent.slug, agent.model) == ("translator", "gpt-4.1-mini")
    assert audit_rows() == []


def test_enabling_and_disabling_are_a_row_each():
    agent = Agent.objects.create(**{**FIELDS, "enabled": False})
    dave = person("dave")
    actions.set_agent_enabled(agent, True, user=dave)
    actions.set_agent_enabled(agent, False, user=dave)
    assert [row[:2] for row in audit_rows()] == [
        ("enable_agent", "dave"),
        ("disable_agent", "dave"),
    ]


@pytest.mark.parametrize(
    "act",
    [
        lambda agent: actions.register_agent({**FIELDS, "slug": "other"}),
        lambda agent: actions.edit_agent(agent, {**FIELDS, "model": "gpt-4.1"}),
        lambda agent: actions.set_agent_enabled(agent, True),
    ],
    ids=["register", "edit", "enable"],
)
def test_a_failed_audit_undoes_the_change(monkeypatch, act):
    agent = Agent.objects.create(**{**FIELDS, "enabled": False})
    before = list(Agent.objects.values())
    make_audit_fail(monkeypatch)
    with pytest.raises(AuditFailed):
        act(agent)
    assert list(Agent.objects.values()) == before


def test_the_page_and_the_api_register_through_the_action(client):
    dave = person("dave")
    client.force_login(dave)
    page = {**FIELDS, "specialties": "translation", "model": "gpt-4.1-mini"}
    page |= {"temperature": "0.7", "max_tokens": "2048", "max_concurrency": "10"}
    assert client.post("/agents/new/", {**page, "enabled": "on"}).status_code == 302
    api = token_client(dave).post("/api/v1/agents", {**FIELDS, "slug": "second"})
    assert api.status_code == 201
    assert audit_rows() == [
        ("register_agent", "dave", "translator"),
        ("register_agent", "dave", "second"),
    ]


def test_the_admin_saves_through_the_actions(admin_client):
    data = {**FIELDS, "specialties": '["translation"]', "model": "gpt-4.1-mini"}
    data |= {"temperature": "0.7", "max_tokens": "2048", "max_concurrency": "10"}
    data |= {"max_tool_steps": 8, "enabled": "on"}
    assert admin_client.post("/admin/agents/agent/add/", data).status_code == 302
    agent = Agent.objects.get(slug="translator")
    del data["enabled"]
    url = f"/admin/agents/agent/{agent.pk}/change/"
    assert admin_client.post(url, data).status_code == 302
    assert [row[0] for row in audit_rows()] == ["register_agent", "disable_agent"]
