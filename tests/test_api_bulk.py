"""Tags on jobs through the API, and bulk actions: the board's filters plus a time range and a
tag select jobs; a dry run previews, a real run cancels, retries or re-runs them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AuditEntry, Job, JobStatus

from .api_support import PROBLEM, make_job, token_client

pytestmark = pytest.mark.django_db

NEW_JOB = {"title": "Compare queues", "description": "Celery or RQ for a small team?"}


def test_a_job_is_submitted_with_tags_and_shows_them(operator_api):
    response = operator_api.post("/api/v1/jobs", {**NEW_JOB, "tags": ["Nightly", "ops,db"]})
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == ["nightly", "ops", "db"]
    assert Job.objects.get().tags == "nightly ops db"
    listed = operator_api.get("/api/v1/jobs").json()["results"]
    assert listed[0]["tags"] == ["nightly", "ops", "db"]


def test_tags_follow_the_forms_rules(operator_api):
    response = operator_api.post("/api/v1/jobs", {**NEW_JOB, "tags": ["no way!"]})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["pointer"] == "#/tags" and "not a tag" in error["detail"]
    too_many = operator_api.post("/api/v1/jobs", {**NEW_JOB, "tags": [f"t{i}" for i in range(11)]})
    assert too_many.status_code == 422
    assert not Job.objects.exists()


def test_the_list_filters_by_tag(operator_api):
    nightly = make_job(tags="nightly research")
    make_job(tags="nightlyish")
    make_job(tags="")
    found = operator_api.get("/api/v1/jobs?tag=Nightly").json()["results"]
    assert [j["id"] for j in found] == [nightly.pk]
    assert operator_api.get("/api/v1/jobs?tag=" + "x" * 41).status_code == 422


@pytest.fixture
def incident():
    """Jobs after an outage: three failed in the last hour tagged nightly, one failed
    yesterday, one still working, one failed without the tag."""
    now = timezone.now()
    jobs = {
        "failed": [make_job(JobStatus.FAILED, tags="nightly") for _ in range(3)],
        "old": make_job(JobStatus.FAILED, tags="nightly"),
        "working": make_job(JobStatus.WORKING, tags="nightly"),
        "untagged": make_job(JobStatus.FAILED),
    }
    Job.objects.filter(pk=jobs["old"].pk).update(created_at=now - timedelta(days=1))
    return jobs


def test_a_dry_run_previews_and_changes_nothing(operator_api, incident):
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = operator_api.post(
        "/api/v1/jobs/bulk",
        {"action": "retry", "tag": "nightly", "created_after": since, "dry_run": True},
    )
    assert response.status_code == 200, response.content
    preview = response.json()
    assert (preview["action"], preview["count"], preview["eligible"]) == ("retry", 4, 3)
    assert preview["refused"] == {"not failed or cancelled": 1}
    assert preview["max_jobs"] > 0
    shown = {j["id"]: (j["eligible"], j["skip_reason"]) for j in preview["jobs"]}
    assert shown[incident["working"].pk] == (False, "not failed or cancelled")
    assert all(shown[j.pk] == (True, "") for j in incident["failed"])
    assert preview["jobs"][0]["tags"] == ["nightly"]
    assert Job.objects.filter(status=JobStatus.FAILED).count() == 5
    assert not AuditEntry.objects.filter(action__startswith="bulk_").exists()


def test_a_bulk_cancel_by_tag_cancels_what_it_can(operator_api, users, incident, no_broker):
    response = operator_api.post("/api/v1/jobs/bulk", {"action": "cancel", "tag": "nightly"})
    assert response.status_code == 200, response.content
    result = response.json()
    working = incident["working"].pk
    assert result["applied"] == [working] and result["created"] == []
    failed = [j.pk for j in incident["failed"]] + [incident["old"].pk]
    assert result["skipped"] == {str(pk): "already finished" for pk in failed}
    assert Job.objects.get(pk=working).status == JobStatus.CANCELLED
    entry = AuditEntry.objects.get(action="bulk_cancel")
    assert entry.actor == users["operator"] and f"#{working}" in entry.detail


def test_a_bulk_retry_by_status_and_time_range(operator_api, incident, no_broker):
    body = {
        "action": "retry",
        "status": "failed",
        "tag": "nightly",
        "created_after": (timezone.now() - timedelta(hours=1)).isoformat(),
        "created_before": (timezone.now() + timedelta(minutes=1)).isoformat(),
    }
    result = operator_api.post("/api/v1/jobs/bulk", body).json()
    retried = sorted(j.pk for j in incident["failed"])
    assert sorted(result["applied"]) == retried and result["skipped"] == {}
    assert Job.objects.get(pk=incident["old"].pk).status == JobStatus.FAILED
    assert Job.objects.get(pk=incident["untagged"].pk).status == JobStatus.FAILED
    assert not Job.objects.filter(pk__in=retried, status=JobStatus.FAILED).exists()


def test_a_bulk_rerun_makes_new_jobs(operator_api, incident, no_broker):
    old = incident["old"]
    old.refresh_from_db()  # a day old
    result = operator_api.post(
        "/api/v1/jobs/bulk",
        {"action": "rerun", "created_before": (old.created_at + timedelta(hours=1)).isoformat()},
    ).json()
    assert result["applied"] == [old.pk]
    [new] = result["created"]
    assert Job.objects.get(pk=new).rerun_of_id == old.pk


def test_bad_filters_are_a_422(operator_api):
    cases = [
        ({"action": "delete"}, "#/action"),
        ({"action": "cancel", "status": "sleeping"}, "#/status"),
        ({"action": "cancel", "created_after": "yesterday"}, "#/created_after"),
        (
            {
                "action": "cancel",
                "created_after": timezone.now().isoformat(),
                "created_before": (timezone.now() - timedelta(days=1)).isoformat(),
            },
            "#",
        ),
    ]
    for body, pointer in cases:
        response = operator_api.post("/api/v1/jobs/bulk", body)
        assert response.status_code == 422, body
        assert response["Content-Type"] == PROBLEM
        assert pointer in {e["pointer"] for e in response.json()["errors"]}, body


def test_more_jobs_than_the_limit_is_refused_whole(operator_api, settings, incident):
    settings.BULK_MAX_JOBS = 2
    response = operator_api.post("/api/v1/jobs/bulk", {"action": "cancel"})
    assert response.status_code == 422
    assert "BULK_MAX_JOBS" in response.json()["errors"][0]["detail"]
    assert Job.objects.get(pk=incident["working"].pk).status == JobStatus.WORKING


def test_only_operators_act_in_bulk(users, incident):
    viewer = token_client(users["viewer"])
    assert (
        viewer.post("/api/v1/jobs/bulk", {"action": "cancel", "dry_run": True}).status_code == 403
    )
    assert (
        token_client(users["manager"]).post("/api/v1/jobs/bulk", {"action": "cancel"}).status_code
        == 403
    )
    assert Job.objects.get(pk=incident["working"].pk).status == JobStatus.WORKING


def test_a_bulk_cancel_with_nothing_to_cancel_skips_every_job(operator_api, incident):
    response = operator_api.post("/api/v1/jobs/bulk", {"action": "cancel", "status": "failed"})
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["applied"] == [] and len(result["skipped"]) == 5
    assert set(result["skipped"].values()) == {"already finished"}
