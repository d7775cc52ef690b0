"""An agent's fields are bounded and its specialties normalised, whoever edits it (the
dashboard form, Django admin, code), and a large team cannot blow up the planning prompt."""

import json

import pytest
from django.core.exceptions import ValidationError

from agents import planning
from agents.models import SPECIALTIES_MAX, SYSTEM_PROMPT_CHARS, Agent

pytestmark = pytest.mark.django_db

FIELDS = {
    "name": "Translator",
    "slug": "translator",
    "specialties": "translation",
    "model": "gpt-4.1-mini",
    "system_prompt": "You translate.",
    "temperature": "0.7",
    "max_tokens": "2048",
    "max_concurrency": "10",
    "enabled": "on",
}


def register(client, **changes) -> tuple[int, dict]:
    response = client.post("/agents/new/", {**FIELDS, **changes})
    form = response.context["form"] if response.context else None
    return response.status_code, (form.errors if form is not None else {})


def admin_add(client, **changes) -> dict:
    data = {**FIELDS, "max_tool_steps": 8, **changes}  # the admin's form has every field
    if not data["specialties"].startswith(("[", "{", '"')):
        data["specialties"] = json.dumps([data["specialties"]])
    response = client.post("/admin/agents/agent/add/", data)
    if response.status_code == 302:
        return {}
    return response.context["adminform"].form.errors


def many(n: int) -> list[str]:
    return [f"skill{i}" for i in range(n)]


def test_the_form_refuses_too_many_specialties(client, superuser):
    status, errors = register(client, specialties=", ".join(many(SPECIALTIES_MAX + 1)))
    assert status == 400
    assert f"at most {SPECIALTIES_MAX} specialties" in errors["specialties"][0]
    assert not Agent.objects.exists()


def test_the_form_accepts_the_most_specialties_allowed(client, superuser):
    status, _ = register(client, specialties=", ".join(many(SPECIALTIES_MAX)))
    assert status == 302
    assert Agent.objects.get().specialties == many(SPECIALTIES_MAX)


def test_the_form_refuses_a_long_specialty(client, superuser):
    status, errors = register(client, specialties="research, " + "x" * 51)
    assert status == 400
    assert "50 characters" in errors["specialties"][0]
    assert not Agent.objects.exists()


def test_the_form_refuses_a_long_system_prompt(client, superuser):
    status, errors = register(client, system_prompt="p" * (SYSTEM_PROMPT_CHARS + 1))
    assert status == 400
    assert f"at most {SYSTEM_PROMPT_CHARS} characters" in errors["system_prompt"][0]
    assert not Agent.objects.exists()


def test_the_form_refuses_a_long_name(client, superuser):
    status, errors = register(client, name="n" * 101)
    assert status == 400 and "name" in errors
    assert not Agent.objects.exists()


def test_the_form_normalises_specialties_as_subtask_types_are(client, superuser):
    status, _ = register(client, specialties=" Research , ANALYSIS,code, coding ,Data Entry")
    assert status == 302
    assert Agent.objects.get().specialties == ["research", "coding", "data_entry"]


def test_an_edit_normalises_too(client, superuser):
    Agent.objects.create(name="T", slug="translator", specialties=["translation"])
    response = client.post("/agents/translator/edit/", {**FIELDS, "specialties": "QA, Testing"})
    assert response.status_code == 302
    assert Agent.objects.get().specialties == ["review"]


def test_admin_refuses_too_many_specialties(client, superuser):
    errors = admin_add(client, specialties=json.dumps(many(SPECIALTIES_MAX + 1)))
    assert f"at most {SPECIALTIES_MAX} specialties" in errors["specialties"][0]
    assert not Agent.objects.exists()


def test_admin_refuses_a_long_specialty_and_specialties_that_are_not_names(client, superuser):
    assert (
        "50 characters" in admin_add(client, specialties=json.dumps(["y" * 60]))["specialties"][0]
    )
    assert "list of names" in admin_add(client, specialties='{"a": 1}')["specialties"][0]
    assert "list of names" in admin_add(client, specialties="[1, 2]")["specialties"][0]
    assert not Agent.objects.exists()


def test_admin_refuses_a_long_system_prompt(client, superuser):
    errors = admin_add(client, system_prompt="p" * (SYSTEM_PROMPT_CHARS + 1))
    assert f"at most {SYSTEM_PROMPT_CHARS} characters" in errors["system_prompt"][0]
    assert not Agent.objects.exists()


def test_admin_stores_normalised_specialties(client, superuser):
    assert admin_add(client, specialties='["Implementation", "coding", " Go "]') == {}
    assert Agent.objects.get().specialties == ["coding", "go"]


def test_the_model_validates_whoever_saves_it():
    agent = Agent(name="x", slug="x", specialties=many(SPECIALTIES_MAX + 1))
    agent.system_prompt = "p" * (SYSTEM_PROMPT_CHARS + 1)
    with pytest.raises(ValidationError) as caught:
        agent.full_clean()
    assert set(caught.value.message_dict) == {"specialties", "system_prompt"}


def test_a_saved_agent_keeps_normalised_specialties():
    agent = Agent.objects.create(name="R", slug="r", specialties=["Analysis", "research", "QA"])
    assert Agent.objects.get(pk=agent.pk).specialties == ["research", "review"]


def test_the_planning_prompt_lists_a_bounded_team():
    team = [(f"agent-{i:03}", [f"{'s' * 45}{k}" for k in range(12)]) for i in range(500)]
    system = planning.decomposition_messages("t", "d", team, 12)[0]["content"]
    assert len(system) < 6000
    assert "agent-000" in system and "agent-499" not in system
    shown = system.count("agent-")
    assert f"{500 - shown} more agents are not listed" in system


def test_a_small_team_is_listed_whole():
    team = [("researcher", ["research"]), ("coder", ["coding"])]
    system = planning.decomposition_messages("t", "d", team, 12)[0]["content"]
    assert "researcher (research); coder (coding)" in system
    assert "not listed" not in system
