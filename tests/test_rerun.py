"""Re-run from a step: a new job whose upstream steps are copied with no call, whose chosen
step (its input or agent changed) and everything after it run again; refused where it cannot
be; lineage both ways and a comparison that escapes what the models wrote."""

import re

import pytest
from django.utils import timezone

from agents import state
from agents.actions import rerun_job
from agents.models import (
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    Subtask,
    SubtaskStatus,
)
from agents.rerun import RerunRefused, rerun_from
from dashboard.reruns import line_diff

from .cast import person
from .inprocess import (
    deliver,
    run_job,
    simulated_llm,
    team_on_a_model_of_its_own,
)

pytestmark = pytest.mark.django_db

NEW_INPUT = "Implement it as a shell script, in ten lines at most."


def test_a_rerun_calls_only_the_chosen_step_what_follows_and_synthesis(
    settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    model = team_on_a_model_of_its_own(monkeypatch)
    second = Agent.objects.create(
        name="Second coder", slug="second-coder", specialties=["coding"], model=model
    )
    with simulated_llm(settings) as simulator:
        original = run_job(sent, django_capture_on_commit_callbacks)
        assert original.status == JobStatus.COMPLETED
        assert simulator.stats.snapshot()["requests"] == 5  # plan, 3 subtasks, synthesis
        simulator.stats.reset()
        coding = original.subtasks.get(key="coding")
        with django_capture_on_commit_callbacks(execute=True):
            job = rerun_from(coding, None, description=NEW_INPUT, agent=second)
        deliver(sent, django_capture_on_commit_callbacks)
        counts = simulator.stats.snapshot()

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert (job.rerun_of, job.rerun_from) == (original, "coding")
    # No planning call, none for research: coding, review and the synthesis, each once.
    assert counts["requests"] == 3
    assert counts["answered_twice"] == 0
    calls = LLMCall.objects.filter(job=job)
    assert sorted(calls.values_list("purpose", "subtask__key")) == [
        ("subtask", "coding"),
        ("subtask", "review"),
        ("synthesis", None),
    ]
    assert job.total_tokens == sum(c.total_tokens for c in calls)

    research = job.subtasks.get(key="research")
    was = original.subtasks.get(key="research")
    assert research.status == SubtaskStatus.COMPLETED
    assert research.copied_from == was
    assert research.result == was.result
    assert (research.tokens, research.cost, research.attempts) == (0, 0, 0)

    rerun_coding = job.subtasks.get(key="coding")
    assert rerun_coding.agent == second  # the operator's choice of agent ran it
    assert rerun_coding.allocation["by"] == "hint"
    assert rerun_coding.copied_from is None
    assert rerun_coding.description == NEW_INPUT
    prompt = calls.get(subtask=rerun_coding).messages[-1]["content"]
    assert NEW_INPUT in prompt
    assert was.result in prompt  # the copied upstream result fed the re-run step
    assert original.subtasks.get(key="coding").description != NEW_INPUT  # untouched

    data = SharedState.objects.get(job=job).data
    before = SharedState.objects.get(job=original).data
    assert data["results"]["research"] == before["results"]["research"]
    assert set(data["results"]) == {"research", "coding", "review"}
    assert data["pending_tasks"] == []
    assert data["final"] == job.result

    entry = AuditEntry.objects.get(action="job.rerun")
    assert entry.job == job
    assert "coding" in entry.detail and "second-coder" in entry.detail


def planned_job(status: str = JobStatus.COMPLETED, **fields) -> Job:
    """research → coding → review, each completed unless `fields` say otherwise."""
    job = Job.objects.create(
        title="Planned", description="A plan.", status=status, planned_at=timezone.now()
    )
    SharedState.objects.create(job=job)
    subs = {}
    for key, kind, after in (
        ("research", "research", None),
        ("coding", "coding", "research"),
        ("review", "review", "coding"),
    ):
        subs[key] = Subtask.objects.create(
            job=job,
            key=key,
            type=kind,
            payload={"description": f"Do the {key}."},
            status=fields.get(key, SubtaskStatus.COMPLETED),
            result=f"{key} result",
        )
        if after:
            subs[key].depends_on.add(subs[after])
    return job


def test_the_state_written_upstream_is_copied_and_what_follows_is_not(
    django_capture_on_commit_callbacks,
):
    Agent.objects.create(name="Coder", slug="coder", specialties=["research", "coding", "review"])
    job = planned_job()
    state.write(job.pk, {"pending_tasks": []}, author="orchestrator/plan")
    state.write(job.pk, {"notes": {"source": "a book"}}, author="coder/research")
    state.record_result(job.pk, "research", "research result", author="coder/research")
    state.write(job.pk, {"draft": "v1", "notes": {"late": True}}, author="coder/coding")

    with django_capture_on_commit_callbacks(execute=True):
        rerun = rerun_from(job.subtasks.get(key="coding"), None)

    data = SharedState.objects.get(job=rerun).data
    assert data["notes"] == {"source": "a book"}
    assert "draft" not in data
    assert data["results"] == {"research": "research result"}
    assert [t["id"] for t in data["pending_tasks"]] == ["coding", "review"]
    assert SharedState.objects.get(job=rerun).versions.get().author == "rerun/copy"
    statuses = dict(rerun.subtasks.values_list("key", "status"))
    assert statuses["research"] == SubtaskStatus.COMPLETED
    assert statuses["review"] == SubtaskStatus.WAITING
    assert statuses["coding"] in (SubtaskStatus.WAITING, SubtaskStatus.QUEUED)
    assert rerun.status == JobStatus.WORKING
    assert rerun.planned_at is not None
    edges = rerun.subtasks.get(key="review").depends_on.get()
    assert (edges.key, edges.job_id) == ("coding", rerun.pk)


@pytest.mark.parametrize("status", [JobStatus.WORKING, JobStatus.WAITING, JobStatus.SYNTHESIZING])
def test_a_job_that_has_not_ended_is_refused(status):
    job = planned_job(status)
    with pytest.raises(RerunRefused, match="once it has ended"):
        rerun_from(job.subtasks.get(key="coding"), None)
    assert Job.objects.count() == 1


def test_a_job_with_no_plan_is_refused():
    job = planned_job(JobStatus.FAILED)
    Job.objects.filter(pk=job.pk).update(planned_at=None)
    with pytest.raises(RerunRefused, match="no plan yet"):
        rerun_from(job.subtasks.get(key="research"), None)


def test_a_step_whose_upstream_did_not_complete_is_refused():
    job = planned_job(JobStatus.FAILED, coding=SubtaskStatus.FAILED, review=SubtaskStatus.FAILED)
    with pytest.raises(RerunRefused, match="depends on coding, which did not complete"):
        rerun_from(job.subtasks.get(key="review"), None)
    # From the step that failed, it may.
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding", "review"])
    assert rerun_from(job.subtasks.get(key="coding"), None).rerun_of == job


def test_an_agent_that_may_not_run_the_step_is_refused():
    Agent.objects.create(name="Orchestrator", slug="orchestrator", specialties=["planning"])
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    off = Agent.objects.create(name="Off", slug="off", specialties=["coding"], enabled=False)
    job = planned_job()
    coding = job.subtasks.get(key="coding")
    for agent in (Agent.objects.get(slug="orchestrator"), off):
        with pytest.raises(RerunRefused, match=f"{agent.slug} may not run a coding step"):
            rerun_from(coding, None, agent=agent)
    busy = Agent.objects.create(name="Busy", slug="busy", specialties=["coding"], max_concurrency=1)
    Subtask.objects.create(job=job, key="other", type="coding", agent=busy, status="working")
    with pytest.raises(RerunRefused, match="busy is running 1 subtasks, its max concurrency"):
        rerun_from(coding, None, agent=busy)
    with pytest.raises(RerunRefused, match="Give the step a description"):
        rerun_from(coding, None, description="   ")
    assert Job.objects.count() == 1  # nothing stored


def test_a_viewer_cannot_rerun(client):
    client.force_login(person("carol"))
    coding = planned_job().subtasks.get(key="coding")
    assert client.get(f"/subtasks/{coding.pk}/rerun/").status_code == 403
    response = client.post(f"/subtasks/{coding.pk}/rerun/", {"description": "Again."})
    assert response.status_code == 403
    assert Job.objects.count() == 1
    page = client.get(f"/jobs/{coding.job_id}/").content.decode()
    assert "Re-run from" not in page


def test_an_operator_reruns_from_the_form_and_sees_the_lineage_both_ways(client, operator):
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding", "review"])
    job = planned_job()
    coding = job.subtasks.get(key="coding")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/subtasks/{coding.pk}/rerun/"' in page
    assert 'aria-label="Re-run from review"' in page  # listed above the plan too
    form = client.get(f"/subtasks/{coding.pk}/rerun/").content.decode()
    assert "Do the coding." in form and 'value="coder"' in form
    assert "Copied: <code>research</code>" in form
    assert "Run again: <code>coding</code>, <code>review</code>" in form

    response = client.post(
        f"/subtasks/{coding.pk}/rerun/", {"description": "Do it again.", "agent": "coder"}
    )
    rerun = Job.objects.get(rerun_of=job)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{rerun.pk}/"
    assert rerun.submitted_by == operator
    assert rerun.subtasks.get(key="coding").description == "Do it again."

    page = client.get(f"/jobs/{rerun.pk}/").content.decode()
    assert f'Re-run of <a href="/jobs/{job.pk}/">#{job.pk}</a>' in page
    assert f'href="/jobs/{job.pk}/compare/{rerun.pk}/"' in page
    assert "copied, no call" in page
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'<a href="/jobs/{rerun.pk}/">#{rerun.pk}</a> from <code>coding</code>' in page


def test_the_same_form_posted_twice_makes_one_rerun(client, operator):
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding", "review"])
    coding = planned_job().subtasks.get(key="coding")
    form = client.get(f"/subtasks/{coding.pk}/rerun/").content.decode()
    token = re.search(r'name="submit_token" value="([^"]+)"', form).group(1)
    data = {"description": "Once only.", "submit_token": token}
    first = client.post(f"/subtasks/{coding.pk}/rerun/", data)
    second = client.post(f"/subtasks/{coding.pk}/rerun/", data)
    assert first["Location"] == second["Location"]
    assert Job.objects.filter(rerun_of=coding.job).count() == 1
    assert AuditEntry.objects.filter(action="job.rerun").count() == 1


def test_the_form_says_why_a_running_job_cannot_be_rerun(client, operator):
    coding = planned_job(JobStatus.WORKING).subtasks.get(key="coding")
    page = client.get(f"/subtasks/{coding.pk}/rerun/").content.decode()
    assert "once it has ended" in page
    response = client.post(f"/subtasks/{coding.pk}/rerun/", {"description": "Again please."})
    assert response.status_code == 409
    assert "once it has ended" in response.content.decode()
    assert Job.objects.count() == 1


def test_the_comparison_shows_differences_and_escapes_results(client, viewer):
    first = planned_job()
    second = planned_job()
    Subtask.objects.filter(job=second, key="coding").update(
        result="coding result\n<script>alert(1)</script>"
    )
    Job.objects.filter(pk=first.pk).update(result="final <b>one</b>")
    Job.objects.filter(pk=second.pk).update(result="final two")
    response = client.get(f"/jobs/{first.pk}/compare/{second.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page and "<b>one</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    added = '<tr class="added">\n        <td class="op">+</td>\n        <td><pre>&lt;script&gt;'
    assert added in page
    assert "<td><pre>final &lt;b&gt;one&lt;/b&gt;</pre></td>" in page
    assert page.count("differs") == 2  # the final result and coding; research, review alike


def test_the_comparison_needs_the_job_page_permissions(client):
    client.force_login(person("eve"))
    first, second = planned_job(), planned_job()
    assert client.get(f"/jobs/{first.pk}/compare/{second.pk}/").status_code == 403


def test_a_line_diff_keeps_common_lines_and_marks_the_rest():
    old, new = "a\nb\nc", "a\nB\nc\nd"
    assert line_diff(old, new) == [(" ", "a"), ("-", "b"), ("+", "B"), (" ", "c"), ("+", "d")]
    assert line_diff("", "x") == [("+", "x")]


def test_the_admin_shows_the_lineage_read_only(admin_client, django_capture_on_commit_callbacks):
    Agent.objects.create(name="Coder", slug="coder", specialties=["coding", "review"])
    job = planned_job()
    with django_capture_on_commit_callbacks(execute=True):
        rerun = rerun_from(job.subtasks.get(key="coding"), None)
    page = admin_client.get(f"/admin/agents/job/{rerun.pk}/change/").content.decode()
    assert 'name="rerun_of"' not in page and 'name="rerun_from"' not in page
    assert f"/admin/agents/job/{job.pk}/change/" in page
    copy = rerun.subtasks.get(key="research")
    page = admin_client.get(f"/admin/agents/subtask/{copy.pk}/change/").content.decode()
    assert 'name="copied_from"' not in page


def test_a_whole_job_rerun_says_so_on_both_pages(client, operator):
    job = planned_job()
    again = rerun_job(job, user=operator)
    page = client.get(f"/jobs/{again.pk}/").content.decode()
    assert f"#{job.pk}</a> (the whole job)" in page and "<code></code>" not in page
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'<a href="/jobs/{again.pk}/">#{again.pk}</a> (whole)' in page
