"""Job templates: the form's rules (a job's limits, placeholders that fit once filled, pinned
versions that exist), the audited actions, and a template submitted as a job."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError

from agents import actions, job_templates
from agents.models import Agent, AuditEntry, Job, JobTemplate, Schedule
from agents.template_forms import JobTemplateForm

from .cast import person

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]
AT = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)  # Monday 06:30 in Berlin


def form_data(**overrides) -> dict:
    return {
        "name": "nightly-digest",
        "title": "Digest for {date}",
        "description": "Summarise what happened on {yesterday} ({weekday}).",
        "priority": "3",
        "budget_tokens": "5000",
        "budget_cost": "0.5",
        "review_plan": "",
        "tags": "nightly, research",
        "agent_versions": "",
        **overrides,
    }


def cleaned(**overrides) -> dict:
    form = JobTemplateForm(form_data(**overrides))
    assert form.is_valid(), form.errors
    return form.cleaned_data


def errors(**overrides) -> dict[str, list[str]]:
    form = JobTemplateForm(form_data(**overrides))
    assert not form.is_valid()
    return form.errors


def make_template(**overrides) -> JobTemplate:
    return actions.create_template(cleaned(**overrides), user=person("bob"))


# The form


def test_a_valid_template_is_cleaned_to_the_actions_fields():
    data = cleaned(name="Nightly-Digest")
    assert data["name"] == "nightly-digest"
    assert data["tags"] == ["nightly", "research"]
    assert data["agent_versions"] == {}
    assert (data["priority"], data["budget_cost"]) == (3, Decimal("0.5"))


def test_a_name_is_a_slug_and_unique():
    make_template()
    assert errors()["name"] == ["A template has this name already."]
    assert "slug" in errors(name="two words")["name"][0]


def test_an_unknown_placeholder_is_named_with_the_known_ones():
    found = errors(title="Digest {today}", description="About {date.year} and more")
    assert found["title"][0].startswith("Unknown placeholder {today}: the known ones are {date}")
    assert "{date.year}" in found["description"][0]


def test_placeholders_that_could_overflow_the_job_once_filled_are_refused():
    # 33 × {date} is 198 characters typed and 330 filled: a job's title takes 200.
    found = errors(title="{date}" * 33)
    assert found["title"] == [
        "With its placeholders filled this can reach 330 characters; the most a job takes "
        "is 200. Shorten it."
    ]
    cleaned(title="{day}" * 40)  # 200 typed, 80 filled


def test_the_jobs_own_limits_apply():
    found = errors(title="  ", description="short", priority="12", budget_cost="-1")
    assert found["title"] == ["This field is required."]
    assert found["description"] == ["Describe the job in at least 10 characters."]
    assert "12 is not one of the available choices" in found["priority"][0]
    assert found["budget_cost"] == ["Ensure this value is greater than or equal to 0."]
    assert "At most 10 tags" in errors(tags=" ".join(f"t{i}" for i in range(11)))["tags"][0]


def test_pinned_versions_must_exist():
    agent = Agent.objects.create(name="Reviewer", slug="reviewer")
    actions.edit_agent(agent, {"system_prompt": "Be strict."})  # v2
    assert cleaned(agent_versions='{"reviewer": 2}')["agent_versions"] == {"reviewer": 2}
    assert errors(agent_versions='{"reviewer": 3, "ghost": 1}')["agent_versions"] == [
        "reviewer has no version 3 (it has v1, v2).",
        "No agent ghost.",
    ]
    assert errors(agent_versions='{"reviewer": "2"}')["agent_versions"] == [
        "reviewer: a version is a whole number from 1 (not 2)."
    ]
    assert errors(agent_versions="[1]")["agent_versions"] == [
        'Give agent versions as {"agent-slug": number}.'
    ]
    assert errors(agent_versions="{" + " " * 2100 + "}")["agent_versions"] == [
        "Keep the pinned versions to 2,000 characters (they have 2,102)."
    ]


def test_editing_shows_the_stored_tags_as_words():
    template = make_template()
    form = JobTemplateForm(instance=template)
    assert 'value="nightly, research"' in str(form["tags"])


# The actions


def test_creating_a_template_stores_and_audits_it():
    template = make_template()
    template.refresh_from_db()
    assert (template.tags, template.created_by.username) == ("nightly research", "bob")
    entry = AuditEntry.objects.get(action="create_template")
    assert (entry.actor.username, entry.detail) == ("bob", "nightly-digest: Digest for {date}")


def test_editing_names_what_changed_once():
    template = make_template()
    bob = person("bob")
    changed = actions.edit_template(
        template, cleaned(name="nightly-digest-2", tags="nightly", priority="3"), user=bob
    )
    assert changed == ["name", "tags"]
    template.refresh_from_db()
    assert (template.name, template.tags) == ("nightly-digest-2", "nightly")
    entry = AuditEntry.objects.get(action="edit_template")
    assert entry.detail == "nightly-digest-2: name, tags"
    same = JobTemplateForm(form_data(name="nightly-digest-2", tags="nightly"), instance=template)
    assert same.is_valid(), same.errors
    assert actions.edit_template(template, same.cleaned_data, user=bob) == []
    assert AuditEntry.objects.filter(action="edit_template").count() == 1


def test_a_name_taken_meanwhile_writes_nothing():
    make_template()
    data = cleaned(name="other")
    data["name"] = "nightly-digest"  # as if taken between the form and the save
    with pytest.raises(IntegrityError):
        actions.create_template(data, user=person("bob"))


def test_a_template_a_schedule_submits_is_not_deleted():
    template = make_template()
    Schedule.objects.create(name="Every morning", template=template, cron="0 6 * * *")
    Schedule.objects.create(name="Every evening", template=template, cron="0 18 * * *")
    with pytest.raises(actions.TemplateInUse) as refused:
        actions.delete_template(template, user=person("bob"))
    assert str(refused.value) == (
        "schedules Every evening, Every morning submit it: delete them or give them another "
        "template first."
    )
    assert JobTemplate.objects.filter(pk=template.pk).exists()
    assert not AuditEntry.objects.filter(action="delete_template").exists()


def test_deleting_keeps_the_jobs_made_from_it():
    template = make_template()
    job = actions.submit_template(template, user=person("bob"))
    actions.delete_template(template, user=person("bob"))
    job.refresh_from_db()
    assert job.template is None and job.title.startswith("Digest for ")
    entry = AuditEntry.objects.get(action="delete_template")
    assert entry.detail == "nightly-digest: Digest for {date}"


@pytest.mark.parametrize("name", ["carol", "dave", "eve"])
def test_only_those_who_may_keep_templates_do(name):
    template = make_template()
    user = person(name)
    with pytest.raises(PermissionDenied):
        actions.create_template(cleaned(name="another"), user=user)
    with pytest.raises(PermissionDenied):
        actions.edit_template(template, {"title": "Another {date}"}, user=user)
    with pytest.raises(PermissionDenied):
        actions.delete_template(template, user=user)
    with pytest.raises(PermissionDenied):
        actions.submit_template(template, user=user)


# Submitting


def test_a_submitted_template_is_a_job_with_its_fields_and_placeholders_filled():
    template = make_template(review_plan="on")
    job = actions.submit_template(template, user=person("bob"), at=AT, tz_name="Asia/Tokyo")
    job.refresh_from_db()
    assert job.title == "Digest for 2026-12-07"
    assert job.description == "Summarise what happened on 2026-12-06 (Monday)."
    assert (job.priority, job.budget_tokens, job.budget_cost) == (3, 5000, Decimal("0.5"))
    assert (job.review_plan, job.tags, job.template) == (True, "nightly research", template)
    assert job.submitted_by.username == "bob"
    entry = AuditEntry.objects.get(job=job)
    assert entry.action == "submit"
    assert entry.detail == "Digest for 2026-12-07 (from template nightly-digest)"


def test_without_a_zone_the_sites_is_used(settings):
    settings.TIME_ZONE = "America/New_York"
    job = actions.submit_template(make_template(), user=person("bob"), at=AT)
    assert job.title == "Digest for 2026-12-07"
    assert job.description == "Summarise what happened on 2026-12-06 (Monday)."
    late = datetime(2026, 12, 8, 2, tzinfo=UTC)  # still the 7th in New York
    assert job_templates.job_fields(job.template, at=late)["title"] == "Digest for 2026-12-07"


def test_the_same_submit_token_gives_one_job():
    template = make_template()
    token = "4c1d8e1e-8a5b-4c69-9c4b-1d2b0f7f0a11"
    first = actions.submit_template(template, user=person("bob"), submit_token=token)
    again = actions.submit_template(template, user=person("bob"), submit_token=token)
    assert first.pk == again.pk
    assert Job.objects.count() == 1


def test_pinned_versions_go_with_the_job_and_are_checked_again_at_submit_time():
    agent = Agent.objects.create(name="Reviewer", slug="reviewer")
    actions.edit_agent(agent, {"system_prompt": "Be strict."})  # v2
    template = make_template(agent_versions='{"reviewer": 2}')
    job = actions.submit_template(template, user=person("bob"))
    assert job.agent_versions == {"reviewer": 2}
    agent.delete()
    with pytest.raises(actions.TemplateRefused) as refused:
        actions.submit_template(template, user=person("bob"))
    assert str(refused.value) == (
        "Template nightly-digest pins versions that cannot run: No agent reviewer. "
        "Edit its pinned versions."
    )
    assert Job.objects.count() == 1


def test_the_submission_limit_holds_unless_a_schedule_submits(settings):
    settings.JOB_SUBMISSIONS_PER_HOUR = 1
    template = make_template()
    bob = person("bob")
    actions.submit_template(template, user=bob)
    with pytest.raises(actions.SubmissionLimit):
        actions.submit_template(template, user=bob)
    assert actions.submit_template(template, user=bob, check_limit=False).pk
    assert Job.objects.count() == 2


def test_a_template_saved_past_the_limits_is_cut_rather_than_refused_at_submit_time():
    # Saved without the form (a script, an old row): its filled title would not fit a job.
    template = JobTemplate.objects.create(
        name="wide", title="{datetime}" * 20, description="x" * 20
    )
    job = actions.submit_template(template, user=None, at=AT)
    assert len(job.title) == 200 and job.title.endswith("…")
    assert job.title.startswith("2026-12-07 05:30 UTC2026-12-07")
