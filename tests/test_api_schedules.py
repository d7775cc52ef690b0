"""Schedules through the API: create, read with the next runs and the recent ones, edit,
pause, resume and delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from agents.models import AuditEntry, JobTemplate, RunOutcome, Schedule, ScheduleRun

from .api_support import PROBLEM, make_job, token_client

pytestmark = pytest.mark.django_db

NIGHTLY = {
    "name": "every-night",
    "template": "digest",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
}


@pytest.fixture
def template() -> JobTemplate:
    return JobTemplate.objects.create(
        name="digest", title="Digest", description="Summarise what changed today."
    )


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_operator_schedules_a_template(operator_api, users, template):
    response = operator_api.post("/api/v1/schedules", NIGHTLY)
    assert response.status_code == 201, response.content
    data = response.json()
    schedule = Schedule.objects.get()
    assert data["id"] == schedule.pk and data["template"] == "digest"
    assert (data["cron"], data["interval_s"], data["timezone"]) == (
        "30 2 * * *",
        None,
        "Europe/Berlin",
    )
    assert (data["enabled"], data["on_missed"], data["on_overlap"]) == (True, "run_once", "skip")
    assert data["every"] and data["created_by"] == "bob" and data["recent_runs"] == []
    runs = [parse(at) for at in data["next_runs"]]
    assert len(runs) == 5 and runs == sorted(runs) and runs[0] > timezone.now()
    # 02:30 in Berlin: 01:30 UTC in winter, 00:30 in summer.
    assert all(at.astimezone(UTC).minute == 30 for at in runs)
    assert parse(data["next_run_at"]) == runs[0]
    assert AuditEntry.objects.filter(action="create_schedule", actor=users["operator"]).exists()


def test_an_interval_schedule_with_its_policies(operator_api, template):
    body = {
        "name": "often",
        "template": "digest",
        "interval_s": 600,
        "on_missed": "skip",
        "on_overlap": "cancel_previous",
        "enabled": False,
    }
    data = operator_api.post("/api/v1/schedules", body).json()
    assert (data["cron"], data["interval_s"], data["enabled"]) == ("", 600, False)
    assert (data["on_missed"], data["on_overlap"]) == ("skip", "cancel_previous")
    runs = [parse(at) for at in data["next_runs"]]
    assert [b - a for a, b in zip(runs, runs[1:], strict=False)] == [timedelta(seconds=600)] * 4


def test_the_schedule_forms_rules_apply(operator_api, template):
    cases = [
        ({**NIGHTLY, "cron": "61 * * * *"}, "#/cron"),
        ({**NIGHTLY, "interval_s": 60}, "#/cron"),  # both
        ({**NIGHTLY, "cron": None}, "#/cron"),  # neither
        ({**NIGHTLY, "timezone": "Mars/Base"}, "#/timezone"),
        ({**NIGHTLY, "template": "nothing"}, "#/template"),
        ({**NIGHTLY, "on_overlap": "queue"}, "#/on_overlap"),
    ]
    for body, pointer in cases:
        response = operator_api.post("/api/v1/schedules", body)
        assert response.status_code == 422, body
        assert response["Content-Type"] == PROBLEM
        assert pointer in {e["pointer"] for e in response.json()["errors"]}, body
    assert not Schedule.objects.exists()
    unknown = operator_api.post("/api/v1/schedules", {**NIGHTLY, "template": "nothing"}).json()
    assert unknown["errors"][0]["detail"] == "No template is named “nothing”."


def test_a_taken_name_is_refused(operator_api, template):
    operator_api.post("/api/v1/schedules", NIGHTLY)
    response = operator_api.post("/api/v1/schedules", {**NIGHTLY, "cron": "0 3 * * *"})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["#/name"]


def test_a_viewer_reads_schedules_but_cannot_change_them(users, template):
    schedule = Schedule.objects.create(name="hourly", template=template, cron="0 * * * *")
    viewer = token_client(users["viewer"])
    listed = viewer.get("/api/v1/schedules").json()["results"]
    assert [s["name"] for s in listed] == ["hourly"]
    assert viewer.get(f"/api/v1/schedules/{schedule.pk}").status_code == 200
    assert viewer.post("/api/v1/schedules", NIGHTLY).status_code == 403
    assert (
        viewer.patch(f"/api/v1/schedules/{schedule.pk}", {"cron": "5 * * * *"}).status_code == 403
    )
    assert viewer.post(f"/api/v1/schedules/{schedule.pk}/pause").status_code == 403
    assert viewer.delete(f"/api/v1/schedules/{schedule.pk}").status_code == 403
    assert token_client(users["nobody"]).get("/api/v1/schedules").status_code == 403


def test_an_edit_of_the_timing_moves_the_next_run(operator_api, users, template):
    schedule_id = operator_api.post("/api/v1/schedules", NIGHTLY).json()["id"]
    response = operator_api.patch(
        f"/api/v1/schedules/{schedule_id}", {"cron": None, "interval_s": 60, "timezone": "UTC"}
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["cron"], data["interval_s"], data["name"]) == ("", 60, "every-night")
    assert parse(data["next_run_at"]) - timezone.now() <= timedelta(seconds=60)
    entry = AuditEntry.objects.get(action="edit_schedule")
    assert entry.actor == users["operator"] and "interval_s" in entry.detail


def test_pause_and_resume(operator_api, users, template):
    schedule_id = operator_api.post("/api/v1/schedules", NIGHTLY).json()["id"]
    paused = operator_api.post(f"/api/v1/schedules/{schedule_id}/pause")
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    assert operator_api.post(f"/api/v1/schedules/{schedule_id}/pause").status_code == 200
    resumed = operator_api.post(f"/api/v1/schedules/{schedule_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["enabled"] is True
    actions = list(AuditEntry.objects.filter(action__endswith="_schedule").values_list("action"))
    assert actions.count(("pause_schedule",)) == 1 and ("resume_schedule",) in actions


def test_the_detail_lists_recent_runs_with_their_jobs(operator_api, template):
    schedule = Schedule.objects.create(name="hourly", template=template, cron="0 * * * *")
    job = make_job(template=template)
    now = timezone.now().replace(microsecond=0)
    ScheduleRun.objects.create(
        schedule=schedule, due_at=now - timedelta(hours=2), outcome=RunOutcome.SKIPPED_OVERLAP
    )
    ScheduleRun.objects.create(
        schedule=schedule, due_at=now - timedelta(hours=1), outcome=RunOutcome.STARTED, job=job
    )
    runs = operator_api.get(f"/api/v1/schedules/{schedule.pk}").json()["recent_runs"]
    assert [(r["outcome"], r["job"], r["job_status"]) for r in runs] == [
        ("started", job.pk, job.status),
        ("skipped_overlap", None, None),
    ]
    assert parse(runs[0]["due_at"]) == now - timedelta(hours=1)


def test_delete_keeps_the_jobs_it_made(operator_api, users, template):
    schedule = Schedule.objects.create(name="hourly", template=template, cron="0 * * * *")
    job = make_job(template=template)
    ScheduleRun.objects.create(
        schedule=schedule, due_at=timezone.now(), outcome=RunOutcome.STARTED, job=job
    )
    assert operator_api.delete(f"/api/v1/schedules/{schedule.pk}").status_code == 204
    assert not Schedule.objects.exists() and not ScheduleRun.objects.exists()
    job.refresh_from_db()
    assert AuditEntry.objects.filter(action="delete_schedule", actor=users["operator"]).exists()
    assert operator_api.get(f"/api/v1/schedules/{schedule.pk}").status_code == 404
