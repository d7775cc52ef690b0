"""Re-run from a subtask through the API: the form's rules, 409 where it cannot be, and the
lineage in the job's detail."""

import pytest

from agents.models import Agent, AuditEntry, Job, JobStatus

from .api_support import PROBLEM, planned_job, token_client

pytestmark = pytest.mark.django_db


def test_an_operator_reruns_a_failed_job_from_its_failed_step(operator_api, users):
    job = planned_job(JobStatus.FAILED)
    check = job.subtasks.get(key="check")
    Agent.objects.create(name="Reviewer", slug="reviewer", specialties=["review"])
    response = operator_api.post(
        f"/api/v1/subtasks/{check.pk}/rerun",
        {"description": "Check it twice", "agent": "reviewer"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    rerun = Job.objects.get(pk=data["id"])
    assert response["Location"].endswith(f"/api/v1/jobs/{rerun.pk}")
    assert (data["rerun_of"], data["rerun_from"], data["reruns"]) == (job.pk, "check", [])
    steps = {s["key"]: s for s in data["subtasks"]}
    draft = job.subtasks.get(key="draft")
    assert steps["draft"]["copied_from"] == draft.pk
    assert (steps["draft"]["status"], steps["draft"]["result"]) == ("completed", "Waves.")
    assert (steps["draft"]["tokens"], steps["draft"]["cost"]) == (0, "0.000000")
    assert steps["check"]["description"] == "Check it twice"
    assert steps["check"]["assign_hint"] == "reviewer"
    assert rerun.submitted_by == users["operator"]
    assert AuditEntry.objects.filter(action="job.rerun", job=rerun).exists()
    assert operator_api.get(f"/api/v1/jobs/{job.pk}").json()["reruns"] == [rerun.pk]


def test_with_no_body_the_step_runs_as_before(operator_api):
    job = planned_job(JobStatus.COMPLETED)
    draft = job.subtasks.get(key="draft")
    response = operator_api.post(f"/api/v1/subtasks/{draft.pk}/rerun")
    assert response.status_code == 201
    steps = {s["key"]: s for s in response.json()["subtasks"]}
    assert steps["draft"]["description"] == "Draft it"
    assert steps["draft"]["copied_from"] is None
    assert steps["check"]["copied_from"] is None


def test_a_running_job_is_a_409_and_nothing_is_made(operator_api):
    draft = planned_job(JobStatus.WORKING).subtasks.get(key="draft")
    response = operator_api.post(f"/api/v1/subtasks/{draft.pk}/rerun")
    assert response.status_code == 409
    assert response["Content-Type"] == PROBLEM
    assert "once it has ended" in response.json()["detail"]
    assert Job.objects.count() == 1


def test_an_agent_that_may_not_run_the_step_is_a_422(operator_api):
    Agent.objects.create(name="Orchestrator", slug="orchestrator", specialties=["planning"])
    draft = planned_job(JobStatus.COMPLETED).subtasks.get(key="draft")
    for agent in ("orchestrator", "nobody-by-that-name"):
        response = operator_api.post(
            f"/api/v1/subtasks/{draft.pk}/rerun", {"agent": agent}, format="json"
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "#/agent"
    assert Job.objects.count() == 1


def test_a_viewer_cannot_rerun(users):
    draft = planned_job(JobStatus.COMPLETED).subtasks.get(key="draft")
    response = token_client(users["viewer"]).post(f"/api/v1/subtasks/{draft.pk}/rerun")
    assert response.status_code == 403
    assert Job.objects.count() == 1
