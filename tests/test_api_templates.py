"""Job templates through the API: save, read, edit, delete, and submit one as a job."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents.models import AuditEntry, IdempotencyKey, Job, JobTemplate, Schedule

from .api_support import PROBLEM, token_client

pytestmark = pytest.mark.django_db

DIGEST = {
    "name": "nightly-digest",
    "title": "Digest for {date}",
    "description": "Summarise what changed in the repository on {weekday}.",
    "priority": 3,
    "tags": ["nightly", "Research"],
}


def make_template(**fields) -> JobTemplate:
    values = {**DIGEST, "tags": "nightly research", **fields}
    return JobTemplate.objects.create(**values)


def test_an_operator_saves_a_template(operator_api, users):
    response = operator_api.post("/api/v1/templates", {**DIGEST, "budget_cost": "0.25"})
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["name"] == "nightly-digest" and data["title"] == "Digest for {date}"
    assert data["tags"] == ["nightly", "research"]
    assert (data["priority"], data["budget_cost"], data["created_by"]) == (3, "0.2500", "bob")
    assert data["agent_versions"] == {} and data["schedules"] == []
    template = JobTemplate.objects.get()
    assert template.tags == "nightly research" and template.created_by == users["operator"]
    assert AuditEntry.objects.filter(action="create_template", actor=users["operator"]).exists()


def test_the_template_forms_rules_apply(operator_api):
    make_template()
    response = operator_api.post(
        "/api/v1/templates",
        {**DIGEST, "title": "Digest for {tomorrow}", "tags": ["no spaces!"]},
    )
    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    errors = {e["pointer"]: e["detail"] for e in response.json()["errors"]}
    assert set(errors) == {"#/name", "#/title", "#/tags"}
    assert "tomorrow" in errors["#/title"]
    assert errors["#/name"] == "A template has this name already."
    assert JobTemplate.objects.count() == 1


def test_pinned_versions_must_exist(operator_api):
    response = operator_api.post("/api/v1/templates", {**DIGEST, "agent_versions": {"ghost": 2}})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["pointer"] == "#/agent_versions" and "ghost" in error["detail"]


def test_a_viewer_reads_templates_but_cannot_write_them(users):
    make_template()
    viewer = token_client(users["viewer"])
    listed = viewer.get("/api/v1/templates")
    assert listed.status_code == 200
    assert [t["name"] for t in listed.json()["results"]] == ["nightly-digest"]
    assert viewer.get("/api/v1/templates/nightly-digest").json()["tags"] == ["nightly", "research"]
    assert viewer.post("/api/v1/templates", {**DIGEST, "name": "other"}).status_code == 403
    assert viewer.patch("/api/v1/templates/nightly-digest", {"priority": 1}).status_code == 403
    assert viewer.delete("/api/v1/templates/nightly-digest").status_code == 403
    assert viewer.post("/api/v1/templates/nightly-digest/submit").status_code == 403
    assert token_client(users["nobody"]).get("/api/v1/templates").status_code == 403


def test_an_edit_changes_what_it_names_and_keeps_the_rest(operator_api, users):
    make_template()
    response = operator_api.patch(
        "/api/v1/templates/nightly-digest", {"priority": 1, "tags": ["weekly"]}
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["priority"], data["tags"], data["title"]) == (1, ["weekly"], "Digest for {date}")
    entry = AuditEntry.objects.get(action="edit_template")
    assert entry.actor == users["operator"] and "priority" in entry.detail
    renamed = operator_api.patch("/api/v1/templates/nightly-digest", {"name": "weekly-digest"})
    assert renamed.json()["name"] == "weekly-digest"
    assert operator_api.get("/api/v1/templates/nightly-digest").status_code == 404


def test_a_template_in_use_is_not_deleted(operator_api):
    template = make_template()
    Schedule.objects.create(name="every-night", template=template, cron="0 2 * * *")
    response = operator_api.delete("/api/v1/templates/nightly-digest")
    assert response.status_code == 409
    assert "every-night" in response.json()["detail"]
    Schedule.objects.all().delete()
    assert operator_api.delete("/api/v1/templates/nightly-digest").status_code == 204
    assert not JobTemplate.objects.exists()
    assert AuditEntry.objects.filter(action="delete_template").exists()


def test_a_submit_makes_a_job_with_placeholders_filled(operator_api, users):
    template = make_template()
    response = operator_api.post("/api/v1/templates/nightly-digest/submit")
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    data = response.json()
    assert data["id"] == job.pk and data["template"] == "nightly-digest"
    assert response["Location"] == f"http://testserver/api/v1/jobs/{job.pk}"
    today = timezone.localdate().isoformat()
    assert job.title == f"Digest for {today}" and "{" not in job.description
    assert (job.template, job.priority, job.tag_list) == (template, 3, ["nightly", "research"])
    assert data["tags"] == ["nightly", "research"]
    assert job.submitted_by == users["operator"]


def test_a_submit_reads_placeholders_in_the_zone_given(operator_api):
    make_template(title="Digest at {datetime}")
    response = operator_api.post(
        "/api/v1/templates/nightly-digest/submit", {"timezone": "Asia/Tokyo"}
    )
    assert response.status_code == 201
    assert "JST" in response.json()["title"]
    bad = operator_api.post("/api/v1/templates/nightly-digest/submit", {"timezone": "Mars/Base"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "#/timezone"


def test_a_submit_with_an_idempotency_key_is_made_once(operator_api):
    make_template()
    key = {"HTTP_IDEMPOTENCY_KEY": "digest-today"}
    first = operator_api.post("/api/v1/templates/nightly-digest/submit", **key)
    again = operator_api.post("/api/v1/templates/nightly-digest/submit", **key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and Job.objects.count() == 1
    # The same key on another endpoint is another request.
    other = operator_api.post(
        "/api/v1/jobs", {"title": "Other", "description": "Another request, same key."}, **key
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/problems/idempotency-key-reused")
    assert IdempotencyKey.objects.count() == 1 and Job.objects.count() == 1


def test_a_template_pinning_a_version_that_is_gone_is_a_409(operator_api):
    make_template(agent_versions={"ghost": 3})
    response = operator_api.post("/api/v1/templates/nightly-digest/submit")
    assert response.status_code == 409
    assert "ghost" in response.json()["detail"]
    assert not Job.objects.exists()


def test_an_unknown_template_is_a_404(operator_api):
    response = operator_api.post("/api/v1/templates/nothing/submit")
    assert response.status_code == 404
    assert response.json()["detail"] == "No template nothing."
