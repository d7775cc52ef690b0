"""Every model is administrable; system-written records are read only; changelists and
searches read as many queries for many rows as for one."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import team
from agents.models import Agent, Job, LLMCall, Subtask

from .history import make_history

pytestmark = pytest.mark.django_db

PAGES = [
    "agent",
    "job",
    "subtask",
    "llmcall",
    "toolcall",
    "modelprice",
    "sharedstate",
    "sharedstateversion",
    "auditentry",
]
SEARCHES = ["agent", "job", "subtask", "llmcall", "sharedstate", "auditentry"]


def queries_of(client, url: str, params: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params or {}).status_code == 200
    return len(queries)


def found(client, page: str, **params) -> list:
    return list(client.get(f"/admin/agents/{page}/", params).context["cl"].result_list)


@pytest.mark.parametrize("model", PAGES)
def test_each_changelist_opens(admin_client, model):
    team.seed()
    assert admin_client.get(f"/admin/agents/{model}/").status_code == 200


@pytest.mark.parametrize("model", ["llmcall", "toolcall", "auditentry", "sharedstateversion"])
def test_records_cannot_be_added_by_hand(admin_client, model):
    assert admin_client.get(f"/admin/agents/{model}/add/").status_code == 403


def test_agents_can_be_disabled_in_bulk(admin_client):
    team.seed()
    ids = list(Agent.objects.values_list("pk", flat=True))
    admin_client.post(
        "/admin/agents/agent/", {"action": "disable", "_selected_action": ids}, follow=True
    )
    assert not Agent.objects.filter(enabled=True).exists()
    assert User.objects.get(username="alice").auditentry_set.count() == len(ids)


@pytest.mark.parametrize("model", PAGES)
def test_a_changelist_reads_no_query_per_row(admin_client, model):
    make_history(1)
    few = queries_of(admin_client, f"/admin/agents/{model}/")
    make_history(60)
    assert queries_of(admin_client, f"/admin/agents/{model}/") == few


@pytest.mark.parametrize("model", SEARCHES)
def test_a_search_reads_no_query_per_row(admin_client, model):
    make_history(1)
    search = {"q": "idempotency" if model != "agent" else "r"}
    few = queries_of(admin_client, f"/admin/agents/{model}/", search)
    make_history(60)
    assert queries_of(admin_client, f"/admin/agents/{model}/", search) == few


def test_calls_are_found_by_the_start_of_a_word_in_their_response_or_error(admin_client):
    make_history(3)
    answer, failure, *_ = LLMCall.objects.order_by("pk")
    LLMCall.objects.filter(pk=answer.pk).update(response="Write through an outbox table.")
    LLMCall.objects.filter(pk=failure.pk).update(response="", error="HTTP 429: slow down")
    assert found(admin_client, "llmcall", q="outbo") == [answer]
    assert found(admin_client, "llmcall", q="http 429") == [failure]
    assert found(admin_client, "llmcall", q="outbox 429") == []
    assert len(found(admin_client, "llmcall", q="idempotency")) == 7


def test_subtasks_are_found_by_key_type_or_the_title_of_their_job(admin_client):
    make_history(3)
    job = Job.objects.order_by("pk").first()
    Job.objects.filter(pk=job.pk).update(title="Migrate the billing database")
    assert set(found(admin_client, "subtask", q="BILLING")) == set(job.subtasks.all())
    assert set(found(admin_client, "subtask", q="billing step-1")) == {
        job.subtasks.get(key="step-1")
    }
    assert len(found(admin_client, "subtask", q="step-2")) == 3
    assert len(found(admin_client, "subtask", q="researc")) == 9


@pytest.mark.parametrize("model", ["job", "subtask", "llmcall"])
def test_filters_offer_their_values_without_a_distinct_over_the_table(admin_client, model):
    make_history(3)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(f"/admin/agents/{model}/")
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"]]


def test_filters_filter(admin_client):
    make_history(3)
    LLMCall.objects.filter(pk=LLMCall.objects.order_by("pk").first().pk).update(http_status=429)
    assert len(found(admin_client, "llmcall", http="429")) == 1
    assert len(found(admin_client, "llmcall", http="2xx")) == 8
    assert (
        len(found(admin_client, "llmcall", model="gpt-4.1-mini"))
        == LLMCall.objects.filter(model="gpt-4.1-mini").count()
    )
    assert len(found(admin_client, "subtask", type="research")) == Subtask.objects.count()
    assert found(admin_client, "job", priority="5") == list(Job.objects.order_by("-created_at"))


def test_the_search_indexes_exist_on_postgresql_and_nowhere_else():
    with connection.cursor() as cursor:
        names = {
            name
            for table in ("agents_job", "agents_subtask", "agents_llmcall")
            for name in connection.introspection.get_constraints(cursor, table)
        }
    search = {
        "job_title_trgm",
        "job_description_trgm",
        "subtask_key_trgm",
        "subtask_type_trgm",
        "llmcall_text",
    }
    if connection.vendor == "postgresql":
        assert search <= names
    else:
        assert not search & names


def change_form_data(response) -> dict:
    """What the admin's change form would post back unchanged (no inline rows)."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is not None and value is not False:
            data[name] = field.prepare_value(value)
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{inline.formset.prefix}-{name}"] = management.initial.get(name, 0)
    return data


def test_a_job_edited_in_the_admin_is_audited_once_naming_what_changed(admin_client):
    job = Job.objects.create(title="Old title", description="d", priority=5)
    url = f"/admin/agents/job/{job.pk}/change/"
    data = change_form_data(admin_client.get(url)) | {"title": "New title", "priority": 2}
    assert admin_client.post(url, data).status_code == 302
    job.refresh_from_db()
    assert (job.title, job.priority) == ("New title", 2)
    [entry] = job.audit.all()
    assert (entry.action, entry.actor.username) == ("edit_job", "alice")
    assert entry.detail == "title, priority"


def test_a_subtask_edited_in_the_admin_is_audited_once_naming_what_changed(admin_client):
    job = Job.objects.create(title="T", description="d")
    sub = Subtask.objects.create(job=job, key="s1", type="research", payload={"a": 1})
    url = f"/admin/agents/subtask/{sub.pk}/change/"
    page = admin_client.get(url)
    assert "lease_owner" not in page.context["adminform"].form.fields  # the steps' own
    data = change_form_data(page) | {"max_retries": 5}
    assert admin_client.post(url, data).status_code == 302
    [entry] = sub.auditentry_set.all()
    assert (entry.action, entry.job_id, entry.detail) == ("edit_subtask", job.pk, "max_retries")


def test_agents_deleted_in_the_admin_are_audited_one_by_one(admin_client):
    team.seed()
    one, *others = Agent.objects.order_by("pk")[:3]
    admin_client.post(f"/admin/agents/agent/{one.pk}/delete/", {"post": "yes"})
    admin_client.post(
        "/admin/agents/agent/",
        {"action": "delete_selected", "_selected_action": [a.pk for a in others], "post": "yes"},
    )
    assert not Agent.objects.filter(pk__in=[one.pk, *(a.pk for a in others)]).exists()
    deleted = User.objects.get(username="alice").auditentry_set.filter(action="delete_agent")
    assert sorted(e.detail.split()[0] for e in deleted) == sorted(a.slug for a in [one, *others])
    assert all(entry.agent_id is None for entry in deleted)
