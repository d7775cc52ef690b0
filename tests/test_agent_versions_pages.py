"""An agent's versions page (its versions, any two compared, restoring one) and the version
each piece of work ran with on the job page and a subtask's trace ("Reviewer v1")."""

import re

import pytest
from django.test import Client

from agents import actions
from agents.models import Agent, AuditEntry, Job, LLMCall, SharedState
from dashboard import live

from .cast import person

pytestmark = pytest.mark.django_db

PAGE = "/agents/reviewer/versions/"


@pytest.fixture
def reviewer() -> Agent:
    """(Asked for before a logged-in user: saving dave again would log him out.)

    v1 as created, v2 a stricter prompt (dave's, with a note), v3 another model."""
    agent = Agent.objects.create(
        name="Reviewer",
        slug="reviewer",
        specialties=["review"],
        model="gpt-4.1-mini",
        system_prompt="Read the work.\nCheck the <facts>.",
    )
    dave = person("dave")
    prompt = "Read the work.\nCheck the <facts> twice.\nBe brief."
    actions.edit_agent(agent, {"system_prompt": prompt}, user=dave, note="Stricter")
    actions.edit_agent(agent, {"model": "gpt-4.1"}, user=dave)
    agent.refresh_from_db()
    assert agent.version == 3
    return agent


def restore_forms(html: str) -> list[str]:
    return re.findall(r'action="/agents/reviewer/versions/(\d+)/restore/"', html)


def test_the_agents_page_links_each_agent_to_its_versions(reviewer, client, viewer):
    html = client.get("/agents/").content.decode()
    assert f'href="{PAGE}"' in html and ">v3<" in html


def test_it_lists_the_versions_newest_first_with_what_each_changed(reviewer, client, viewer):
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert [row["version"].number for row in response.context["page"].rows] == [3, 2, 1]
    places = [html.index(f'id="version-{n}"') for n in (3, 2, 1)]
    assert places == sorted(places)
    assert "Reviewer v3" in html and "Stricter" in html and "dave" in html
    assert "gpt-4.1-mini → gpt-4.1" in html  # v3 against v2
    assert "The first version." in html
    v2 = response.context["page"].rows[1]
    assert [change["name"] for change in v2["changes"]] == ["system_prompt"]


def test_it_diffs_any_two_versions_side_by_side(reviewer, client, viewer):
    response = client.get(PAGE, {"a": 1, "b": 3})
    assert response.status_code == 200
    compared = response.context["compared"]
    assert (compared["a"].number, compared["b"].number) == (1, 3)
    assert [row["name"] for row in compared["changes"]] == ["model", "system_prompt"]
    lines = compared["changes"][1]["lines"]
    assert ("-", "Check the <facts>.") in lines
    assert ("+", "Check the <facts> twice.") in lines and ("+", "Be brief.") in lines
    assert (" ", "Read the work.") in lines
    html = response.content.decode()
    assert "Check the &lt;facts&gt; twice." in html and "<facts>" not in html  # escaped
    assert '<tr class="added">' in html and '<tr class="removed">' in html
    assert "<td>gpt-4.1-mini</td>" in html and "<td>gpt-4.1</td>" in html


def test_two_equal_versions_are_said_to_be_the_same(reviewer, client, viewer):
    html = client.get(PAGE, {"a": 2, "b": 2}).content.decode()
    assert "v2 and v2 are the same." in html


def test_a_version_it_does_not_have_is_not_compared(reviewer, client, viewer):
    response = client.get(PAGE, {"a": 1, "b": 99})
    assert response.status_code == 200 and response.context["compared"] is None
    assert "Pick two of Reviewer" in response.content.decode()


def test_a_manager_restores_an_old_version_as_a_new_one(reviewer, client, manager):
    assert restore_forms(client.get(PAGE).content.decode()) == ["2", "1"]  # not the current
    response = client.post(f"{PAGE}1/restore/")
    assert response.status_code == 302 and response["Location"] == PAGE
    reviewer.refresh_from_db()
    assert reviewer.version == 4
    assert reviewer.system_prompt == "Read the work.\nCheck the <facts>."
    assert reviewer.model == "gpt-4.1-mini"
    v4 = reviewer.versions.get(number=4)
    assert v4.author == manager and v4.config == reviewer.versions.get(number=1).config
    entry = AuditEntry.objects.get(action="restore_agent_version")
    assert (entry.actor, entry.agent) == (manager, reviewer)
    html = client.get(PAGE).content.decode()
    assert "Restored v1 of Reviewer as its new v4." in html
    assert restore_forms(html) == ["3", "2", "1"]


def test_an_edit_on_the_edit_page_saves_its_note_with_the_new_version(reviewer, client, manager):
    page = client.get("/agents/reviewer/edit/").content.decode()
    assert 'name="version-note"' in page and f'href="{PAGE}"' in page
    form = {
        "name": "Reviewer",
        "slug": "reviewer",
        "specialties": "review",
        "model": "gpt-4.1",
        "system_prompt": "Only the facts.",
        "temperature": reviewer.temperature,
        "max_tokens": reviewer.max_tokens,
        "max_concurrency": reviewer.max_concurrency,
        "enabled": "on",
        "max_tool_steps": reviewer.max_tool_steps,
        "version-note": "Shorter prompt",
    }
    assert client.post("/agents/reviewer/edit/", form).status_code == 302
    v4 = reviewer.versions.get(number=4)
    assert (v4.note, v4.author, v4.config["system_prompt"]) == (
        "Shorter prompt",
        manager,
        "Only the facts.",
    )
    html = client.get(PAGE).content.decode()
    assert "Shorter prompt" in html and "the lines" in html
    too_long = client.post("/agents/reviewer/edit/", {**form, "version-note": "n" * 201})
    assert too_long.status_code == 400 and reviewer.versions.count() == 4


def test_restoring_a_version_it_does_not_have_is_a_404(reviewer, client, manager):
    assert client.post(f"{PAGE}99/restore/").status_code == 404
    assert client.get(f"{PAGE}1/restore/").status_code == 405
    reviewer.refresh_from_db()
    assert reviewer.version == 3


def test_a_viewer_reads_the_versions_but_may_not_restore(reviewer, client, viewer):
    html = client.get(PAGE).content.decode()
    assert "Reviewer v3" in html and restore_forms(html) == [] and "Restore" not in html
    assert client.post(f"{PAGE}1/restore/").status_code == 403
    reviewer.refresh_from_db()
    assert reviewer.version == 3
    assert not AuditEntry.objects.filter(action="restore_agent_version").exists()


def test_a_restore_needs_the_csrf_token(reviewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(person("dave"))
    assert client.post(f"{PAGE}1/restore/").status_code == 403
    reviewer.refresh_from_db()
    assert reviewer.version == 3


def test_anyone_not_logged_in_is_sent_to_log_in(client, reviewer):
    for response in (client.get(PAGE), client.post(f"{PAGE}1/restore/")):
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    reviewer.refresh_from_db()
    assert reviewer.version == 3


def test_someone_in_no_role_may_not_read_them(client, reviewer):
    client.force_login(person("eve"))
    assert client.get(PAGE).status_code == 403


@pytest.fixture
def job_run(reviewer) -> Job:
    """A finished job: its step ran on the reviewer's v1 (a call recorded with it), and an
    older step from before versions were recorded (no number)."""
    job = Job.objects.create(title="checked", description="d" * 20, status="completed")
    job.planned_at = job.created_at
    job.save()
    SharedState.objects.create(job=job)
    ran = job.subtasks.create(
        key="review", type="review", status="completed", agent=reviewer, agent_version=1
    )
    LLMCall.objects.create(
        agent=reviewer, agent_version=1, job=job, subtask=ran, purpose="subtask", model="m"
    )
    old = job.subtasks.create(key="older", type="review", status="completed", agent=reviewer)
    LLMCall.objects.create(agent=reviewer, job=job, subtask=old, purpose="subtask", model="m")
    return job


def test_the_job_page_shows_the_version_each_step_and_call_ran_with(job_run, client, viewer):
    html = client.get(f"/jobs/{job_run.pk}/").content.decode()
    ran, old = job_run.subtasks.get(key="review"), job_run.subtasks.get(key="older")
    assert "→ Reviewer v1" in section(html, ran.pk)
    assert '<span class="agent">Reviewer v1</span>' in section(html, ran.pk)
    # Work from before versions: the agent's name alone.
    assert "→ Reviewer" in section(html, old.pk) and "Reviewer v" not in section(html, old.pk)
    assert '<span class="agent">Reviewer</span>' in section(html, old.pk)


def test_a_live_fragment_shows_the_versions_as_a_reload_does(job_run, client, viewer):
    ids = set(job_run.subtasks.values_list("pk", flat=True))
    fragment = live.render_job(job_run.pk, moved=True, changed=ids, state=False)
    ran = job_run.subtasks.get(key="review")
    page = client.get(f"/jobs/{job_run.pk}/").content.decode()
    for html in (fragment, page):
        assert "→ Reviewer v1" in summary(html, ran.pk)
    assert summary(fragment, ran.pk) == summary(page, ran.pk)
    assert trace(fragment, ran.pk) == trace(page, ran.pk)


def test_a_subtasks_trace_shows_the_version_of_each_call(job_run, client, viewer):
    ran = job_run.subtasks.get(key="review")
    html = client.get(f"/subtasks/{ran.pk}/").content.decode()
    assert "→ Reviewer v1" in html and '<span class="agent">Reviewer v1</span>' in html


def section(html: str, subtask_id: int) -> str:
    """A subtask's <details> on the job page, or in a live fragment."""
    start = html.index(f'id="subtask-{subtask_id}"')
    return html[start : html.index("</details>", start)]


def summary(html: str, subtask_id: int) -> str:
    part = section(html, subtask_id)
    return part[part.index("<summary>") : part.index("</summary>")]


def trace(html: str, subtask_id: int) -> str:
    part = section(html, subtask_id)
    return part[part.index('<ol class="trace"') : part.index("</ol>")]


def test_two_jobs_compared_show_the_version_each_step_ran_with(reviewer, client, viewer):
    jobs = []
    for number in (1, 3):
        job = Job.objects.create(title="checked", description="d" * 20, status="completed")
        job.subtasks.create(
            key="review", type="review", status="completed", agent=reviewer, agent_version=number
        )
        jobs.append(job)
    html = client.get(f"/jobs/{jobs[0].pk}/compare/{jobs[1].pk}/").content.decode()
    assert "→ Reviewer v1" in html and "→ Reviewer v3" in html
