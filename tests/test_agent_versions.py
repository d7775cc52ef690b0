"""Agent versions: every change to what shapes an agent's work is a numbered, immutable
version; each subtask attempt and LLM call records the one it ran with; a version can be
diffed and restored (a new version equal to it, audited), from the API too."""

import pytest
from django.core.management import call_command

from agents import actions, team, versions
from agents.models import Agent, AgentVersion, AuditEntry, JobStatus, LLMCall, Subtask
from agents.rerun import rerun_from

from .api_support import PROBLEM, planned_job, token_client
from .auditing import AuditFailed, audit_rows, make_audit_fail
from .cast import person
from .inprocess import deliver, run_job, simulated_llm, team_on_a_model_of_its_own

pytestmark = pytest.mark.django_db

FIELDS = {"name": "Reviewer", "slug": "reviewer", "specialties": ["review"]}


def numbers(agent: Agent) -> list[int]:
    return list(agent.versions.order_by("number").values_list("number", flat=True))


def test_a_new_agent_has_version_1_however_it_is_created():
    raw = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    registered = actions.register_agent(FIELDS, user=person("dave"))
    team.seed()
    call_command("seed_agents", stdout=None)  # idempotent: no second version
    for agent in Agent.objects.all():
        assert agent.version == 1 and numbers(agent) == [1], agent.slug
        assert agent.versions.get().config == versions.snapshot(agent)
    assert registered.versions.get().author == person("dave")
    assert raw.versions.get().author is None


def test_an_edit_of_what_shapes_the_work_is_a_new_version():
    agent = Agent.objects.create(**FIELDS, system_prompt="Check the work.")
    dave = person("dave")
    actions.edit_agent(
        agent, {"system_prompt": "Check the work twice."}, user=dave, note="Stricter"
    )
    edited = actions.edit_agent(agent, {"model": "gpt-4.1", "temperature": 0.2}, user=dave)
    agent.refresh_from_db()
    assert agent.version == edited.version == 3 and numbers(agent) == [1, 2, 3]
    v2, v3 = agent.versions.get(number=2), agent.versions.get(number=3)
    assert (v2.author, v2.note, v2.config["system_prompt"]) == (
        dave,
        "Stricter",
        "Check the work twice.",
    )
    assert (v3.config["model"], v3.config["temperature"]) == ("gpt-4.1", 0.2)
    assert v3.config == versions.snapshot(agent)
    # One audit row per edit, as before.
    assert [row[0] for row in audit_rows()] == ["edit_agent", "edit_agent"]


@pytest.mark.parametrize(
    "fields",
    [{"enabled": False}, {"max_concurrency": 3}, {"name": "Checker"}, {"model": "gpt-4.1-mini"}],
    ids=["enabled", "concurrency", "name", "unchanged-model"],
)
def test_a_change_to_anything_else_is_no_version(fields):
    agent = Agent.objects.create(**FIELDS)
    actions.edit_agent(agent, fields)
    Agent.objects.record_outcome(agent.pk, ok=True, latency_s=1.0, tokens=10, cost=0)
    actions.set_agent_enabled(agent, True)
    agent.refresh_from_db()
    assert agent.version == 1 and numbers(agent) == [1]


def test_a_failed_audit_leaves_no_version(monkeypatch):
    agent = Agent.objects.create(**FIELDS)
    make_audit_fail(monkeypatch)
    with pytest.raises(AuditFailed):
        actions.edit_agent(agent, {"model": "gpt-4.1"})
    with pytest.raises(AuditFailed):
        actions.restore_agent_version(agent, 1)
    assert numbers(agent) == [1] and Agent.objects.get().version == 1


def test_the_api_edit_and_the_admin_record_versions(admin_client):
    agent = Agent.objects.create(**FIELDS)
    api = token_client(person("dave"))
    response = api.patch(
        "/api/v1/agents/reviewer", {"model": "gpt-4.1", "version_note": "Bigger model"}
    )
    assert response.status_code == 200 and response.json()["version"] == 2
    data = {**FIELDS, "specialties": '["review"]', "model": "gpt-4.1", "system_prompt": "Hm."}
    data |= {"temperature": "0.7", "max_tokens": "2048", "max_concurrency": "10"}
    data |= {"max_tool_steps": 8, "enabled": "on"}
    assert admin_client.post(f"/admin/agents/agent/{agent.pk}/change/", data).status_code == 302
    notes = list(
        agent.versions.order_by("number").values_list("number", "note", "author__username")
    )
    assert notes == [(1, "", None), (2, "Bigger model", "dave"), (3, "", "alice")]


def test_restore_makes_a_new_version_equal_to_the_old_one():
    agent = Agent.objects.create(**FIELDS, system_prompt="One.")
    v1 = agent.versions.get()
    actions.edit_agent(agent, {"system_prompt": "Two.", "tools": ["read_state"]})
    made = actions.restore_agent_version(agent, 1, user=person("dave"))
    agent.refresh_from_db()
    assert made.number == agent.version == 3 and numbers(agent) == [1, 2, 3]
    assert made.config == v1.config == versions.snapshot(agent)
    assert (agent.system_prompt, agent.tools) == ("One.", [])
    assert made.note == "Restored from v1" and made.author == person("dave")
    assert audit_rows() == [
        ("edit_agent", None, "reviewer: system_prompt, tools"),
        ("restore_agent_version", "dave", "reviewer v1 → v3"),
    ]


def test_restoring_an_unknown_version_changes_nothing():
    agent = Agent.objects.create(**FIELDS)
    with pytest.raises(AgentVersion.DoesNotExist):
        actions.restore_agent_version(agent, 7)
    assert numbers(agent) == [1] and not AuditEntry.objects.exists()


def test_a_diff_lists_what_differs_and_the_prompt_line_by_line():
    agent = Agent.objects.create(**FIELDS, system_prompt="Check the work.\nBe kind.")
    actions.edit_agent(agent, {"system_prompt": "Check the work.\nBe blunt.", "max_tokens": 512})
    v1, v2 = agent.versions.get(number=1), agent.versions.get(number=2)
    assert versions.diff(v1, v2) == [
        ("system_prompt", "Check the work.\nBe kind.", "Check the work.\nBe blunt."),
        ("max_tokens", 2048, 512),
    ]
    assert versions.diff(v1, v1) == []
    lines = versions.text_diff(v1.config["system_prompt"], v2.config["system_prompt"])
    assert lines[1:] == [" Check the work.", "-Be kind.", "+Be blunt."]
    assert versions.label("Reviewer", 7) == "Reviewer v7"


def test_each_attempt_and_call_records_the_version_it_ran_with(
    settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    team_on_a_model_of_its_own(monkeypatch)
    coder = Agent.objects.get(slug="coder")
    actions.edit_agent(coder, {"system_prompt": "Write tidy code."})  # coder v2
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)
        assert job.status == JobStatus.COMPLETED, job.error
        actions.edit_agent(coder, {"system_prompt": "Write tidier code."})  # coder v3
        second = run_job(sent, django_capture_on_commit_callbacks, title="Another")
        # A re-run from the last step: the steps copied before it keep the version they ran
        # with, the step run again runs with the agent's current one.
        with django_capture_on_commit_callbacks(execute=True):
            rerun = rerun_from(job.subtasks.get(key="review"), None)
        deliver(sent, django_capture_on_commit_callbacks)
    assert second.status == JobStatus.COMPLETED, second.error
    rerun.refresh_from_db()
    assert rerun.status == JobStatus.COMPLETED, rerun.error
    steps = dict(rerun.subtasks.values_list("key", "agent_version"))
    assert steps == {"research": 2, "coding": 2, "review": 3}

    for ran, version in ((job, 2), (second, 3)):
        subtasks = Subtask.objects.filter(job=ran)
        assert subtasks and {s.agent_version for s in subtasks} == {version}
        calls = LLMCall.objects.filter(job=ran)
        by_purpose = {(c.purpose, c.agent.slug, c.agent_version) for c in calls}
        assert by_purpose == {
            ("plan", "orchestrator", 1),
            ("subtask", "coder", version),
            ("synthesis", "orchestrator", 1),
        }


# The API: Viewers read, Agent managers restore.


@pytest.fixture
def reviewer() -> Agent:
    agent = Agent.objects.create(**FIELDS, system_prompt="One.")
    actions.edit_agent(agent, {"system_prompt": "Two."}, user=person("dave"), note="Second")
    return agent


def test_the_api_lists_versions_newest_first(users, reviewer):
    response = token_client(users["viewer"]).get("/api/v1/agents/reviewer/versions")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["number"], r["label"], r["current"]) for r in rows] == [
        (2, "Reviewer v2", True),
        (1, "Reviewer v1", False),
    ]
    assert (rows[0]["author"], rows[0]["note"]) == ("dave", "Second")
    assert rows[0]["config"]["system_prompt"] == "Two."


def test_the_api_gets_a_version_and_diffs_two(users, reviewer):
    client = token_client(users["viewer"])
    one = client.get("/api/v1/agents/reviewer/versions/1")
    assert one.status_code == 200 and one.json()["config"]["system_prompt"] == "One."
    diff = client.get("/api/v1/agents/reviewer/versions/1/diff/2").json()
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    (change,) = diff["changes"]
    assert (change["field"], change["old"], change["new"]) == ("system_prompt", "One.", "Two.")
    assert change["lines"][1:] == ["-One.", "+Two."]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/agents/reviewer/versions/9",
        "/api/v1/agents/reviewer/versions/1/diff/9",
        "/api/v1/agents/nobody/versions",
    ],
)
def test_an_unknown_version_or_agent_is_a_404_problem(users, reviewer, url):
    response = token_client(users["viewer"]).get(url)
    assert response.status_code == 404 and response["Content-Type"] == PROBLEM


def test_an_agent_manager_restores_a_version(users, reviewer):
    client = token_client(users["manager"])
    response = client.post("/api/v1/agents/reviewer/versions/1/restore")
    assert response.status_code == 201, response.content
    assert (response.json()["number"], response.json()["current"]) == (3, True)
    assert response.json()["config"]["system_prompt"] == "One."
    reviewer.refresh_from_db()
    assert reviewer.system_prompt == "One." and reviewer.version == 3
    assert AuditEntry.objects.filter(action="restore_agent_version").count() == 1
    missing = client.post("/api/v1/agents/reviewer/versions/9/restore")
    assert missing.status_code == 404 and missing["Content-Type"] == PROBLEM


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_cannot_restore(users, reviewer, role):
    response = token_client(users[role]).post("/api/v1/agents/reviewer/versions/1/restore")
    assert response.status_code == 403 and response["Content-Type"] == PROBLEM
    assert numbers(reviewer) == [1, 2]


def test_calls_and_subtasks_in_the_api_show_their_version(users, reviewer):
    job = planned_job()
    Subtask.objects.filter(job=job).update(agent_version=4)
    LLMCall.objects.create(job=job, agent=reviewer, agent_version=2, purpose="plan", model="m")
    client = token_client(users["viewer"])
    call = client.get(f"/api/v1/jobs/{job.pk}/calls").json()["results"][-1]
    assert (call["agent"], call["agent_version"]) == ("reviewer", 2)
    sub = job.subtasks.first()
    assert client.get(f"/api/v1/subtasks/{sub.pk}").json()["agent_version"] == 4
    agent = client.get("/api/v1/agents/reviewer").json()
    assert agent["version"] == 2


def test_the_admin_shows_versions_read_only(admin_client, reviewer):
    assert admin_client.get("/admin/agents/agentversion/").status_code == 200
    version = reviewer.versions.get(number=2)
    page = admin_client.get(f"/admin/agents/agentversion/{version.pk}/change/")
    assert page.status_code == 200 and "Second" in page.content.decode()
    assert admin_client.get("/admin/agents/agentversion/add/").status_code == 403
    edit = admin_client.post(f"/admin/agents/agentversion/{version.pk}/change/", {"note": "x"})
    assert edit.status_code == 403 and reviewer.versions.get(number=2).note == "Second"
