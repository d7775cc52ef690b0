"""Templates and schedules in the admin change through their audited actions, with their
forms' rules; a template a schedule submits is not deleted; schedule runs and idempotency keys
are records, shown and never changed."""

from datetime import UTC, datetime

import pytest

from agents.models import AuditEntry, IdempotencyKey, Job, JobTemplate, Schedule, ScheduleRun

from .cast import person

pytestmark = pytest.mark.django_db

TEMPLATE = {
    "name": "digest",
    "title": "Digest of {date}",
    "description": "Summarise what happened on {yesterday}.",
    "priority": "3",
    "tags": "nightly, research",
    "agent_versions": "",
}
SCHEDULE = {
    "name": "Nightly",
    "cron": "30 2 * * *",
    "interval_s": "",
    "timezone": "Europe/Berlin",
    "enabled": "on",
    "on_missed": "skip",
    "on_overlap": "skip",
}


@pytest.fixture
def digest() -> JobTemplate:
    return JobTemplate.objects.create(
        name="digest", title="Digest", description="Summarise the day.", tags="nightly"
    )


@pytest.fixture
def nightly(digest) -> Schedule:
    return Schedule.objects.create(name="Nightly", template=digest, interval_s=3600)


def test_a_template_added_and_changed_is_audited(admin_client, admin_user):
    response = admin_client.post("/admin/agents/jobtemplate/add/", TEMPLATE)
    assert response.status_code == 302, response.content.decode()[-2000:]
    template = JobTemplate.objects.get()
    assert (template.tags, template.created_by) == ("nightly research", admin_user)
    url = f"/admin/agents/jobtemplate/{template.pk}/change/"
    assert 'value="nightly, research"' in admin_client.get(url).content.decode()
    admin_client.post(url, {**TEMPLATE, "title": "Weekly {week}"})
    template.refresh_from_db()
    assert template.title == "Weekly {week}"
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor")) == [
        ("create_template", admin_user.pk),
        ("edit_template", admin_user.pk),
    ]


def test_a_template_with_an_unknown_placeholder_is_refused(admin_client):
    response = admin_client.post(
        "/admin/agents/jobtemplate/add/", {**TEMPLATE, "title": "On {tomorrow}"}
    )
    assert response.status_code == 200 and "Unknown placeholder" in response.content.decode()
    assert not JobTemplate.objects.exists() and not AuditEntry.objects.exists()


def test_a_template_a_schedule_submits_is_not_deleted(admin_client, nightly):
    template = nightly.template
    url = f"/admin/agents/jobtemplate/{template.pk}/delete/"
    page = admin_client.get(url).content.decode()
    assert "Nightly" in page and "protected" in page
    admin_client.post(url, {"post": "yes"})
    assert JobTemplate.objects.filter(pk=template.pk).exists()
    assert not AuditEntry.objects.exists()


def test_a_free_template_is_deleted_through_its_action(admin_client, digest):
    admin_client.post(f"/admin/agents/jobtemplate/{digest.pk}/delete/", {"post": "yes"})
    assert not JobTemplate.objects.exists()
    assert AuditEntry.objects.get().action == "delete_template"


def test_a_schedule_added_changed_paused_and_deleted_is_audited(admin_client, digest):
    response = admin_client.post("/admin/agents/schedule/add/", {**SCHEDULE, "template": digest.pk})
    assert response.status_code == 302, response.content.decode()[-2000:]
    schedule = Schedule.objects.get()
    assert schedule.next_run_at is not None  # computed by the action, not the form
    url = f"/admin/agents/schedule/{schedule.pk}/change/"
    data = {**SCHEDULE, "template": digest.pk, "cron": "", "interval_s": "60"}
    admin_client.post(url, data)
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.interval_s) == ("", 60)
    changelist = "/admin/agents/schedule/"
    admin_client.post(changelist, {"action": "pause", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert not schedule.enabled
    admin_client.post(changelist, {"action": "resume", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.enabled
    admin_client.post(f"/admin/agents/schedule/{schedule.pk}/delete/", {"post": "yes"})
    assert not Schedule.objects.exists()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "create_schedule",
        "edit_schedule",
        "pause_schedule",
        "resume_schedule",
        "delete_schedule",
    ]


def test_a_schedule_with_both_cron_and_interval_is_refused(admin_client, digest):
    data = {**SCHEDULE, "template": digest.pk, "interval_s": "60"}
    response = admin_client.post("/admin/agents/schedule/add/", data)
    assert response.status_code == 200 and "not both" in response.content.decode()
    assert not Schedule.objects.exists()


def test_runs_and_keys_are_records(admin_client, nightly):
    job = Job.objects.create(title="Digest", description="Summarise the day.")
    run = ScheduleRun.objects.create(
        schedule=nightly, due_at=datetime(2026, 12, 7, tzinfo=UTC), job=job, outcome="started"
    )
    key = IdempotencyKey.objects.create(
        user=person("bob"), key="k-1", fingerprint="0" * 64, job=job
    )
    for row in (run, key):
        name = row._meta.model_name
        assert admin_client.get(f"/admin/agents/{name}/").status_code == 200, name
        shown = admin_client.get(f"/admin/agents/{name}/{row.pk}/change/")
        assert shown.status_code == 200 and b'name="_save"' not in shown.content, name
        assert admin_client.get(f"/admin/agents/{name}/add/").status_code == 403, name
        assert admin_client.post(f"/admin/agents/{name}/{row.pk}/delete/").status_code == 403


def test_a_viewer_in_the_admin_changes_nothing(client, nightly):
    carol = person("carol")
    carol.is_staff = True
    carol.save()
    client.force_login(carol)
    template_url = f"/admin/agents/jobtemplate/{nightly.template_id}/change/"
    assert client.get(template_url).status_code == 200
    url = f"/admin/agents/schedule/{nightly.pk}/change/"
    assert client.get(url).status_code == 200
    data = {**SCHEDULE, "template": nightly.template_id, "name": "Renamed"}
    assert client.post(url, data).status_code == 403
    response = client.post(
        "/admin/agents/schedule/", {"action": "pause", "_selected_action": [nightly.pk]}
    )
    nightly.refresh_from_db()
    assert nightly.name == "Nightly" and nightly.enabled and response.status_code in (200, 302)
    assert not AuditEntry.objects.exists()
