"""The admin's JSON fields (an agent's specialties, a subtask's payload) refuse JSON nested
past the bound and text PostgreSQL cannot store (NUL) with a form error: Django's own
JSONField parsed 1,000 levels into a RecursionError and passed `\\u0000` on to jsonb, both
a 500. Nothing is saved either way. A list filtered on a NUL (a DataError, a 500) is shown
again unfiltered, as for any lookup the admin does not know."""

import json

import pytest
from django import forms
from django.contrib.admin import site

from agents.admin_base import StorableChangeList
from agents.forms import BoundedJSONField
from agents.models import Agent, Job, Subtask

pytestmark = pytest.mark.django_db
JSON_MAX_DEPTH = 32  # agents.jsonvalues's bound
NUL = '["research", "a\\u0000b"]'


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


DEEP = nested(1000)
TOO_DEEP = f"deeper than {JSON_MAX_DEPTH} levels"
HOLDS_NUL = "holds a NUL character"


def as_posted(page) -> dict:
    """The admin form on `page` as a browser would post it back unchanged."""
    data = {}
    for field in page.context["adminform"].form:
        value = field.value()
        if value is not None and not field.field.disabled:
            data[field.html_name] = value
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({field.html_name: field.value() for field in management})
    return data


def post_change(client, url: str, **changes):
    data = {**as_posted(client.get(url)), **changes}
    return client.post(url, data)


def refused(page, field: str, message: str) -> None:
    assert page.status_code == 200, page.content[:300]
    errors = page.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors


@pytest.fixture
def agent() -> Agent:
    return Agent.objects.create(name="Researcher", slug="researcher", specialties=["research"])


@pytest.fixture
def subtask(agent) -> Subtask:
    job = Job.objects.create(title="A job", description="Something worth doing.")
    return Subtask.objects.create(job=job, key="look", type="research", payload={"q": "x"})


@pytest.mark.parametrize(
    ("typed", "message"), [(DEEP, TOO_DEEP), (NUL, HOLDS_NUL)], ids=["deep", "nul"]
)
def test_an_agents_specialties_are_bounded(admin_client, agent, typed, message):
    url = f"/admin/agents/agent/{agent.pk}/change/"
    refused(post_change(admin_client, url, specialties=typed), "specialties", message)
    agent.refresh_from_db()
    assert agent.specialties == ["research"]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (DEEP, TOO_DEEP),
        ('{"q": ' + DEEP + "}", TOO_DEEP),
        (nested(JSON_MAX_DEPTH + 1), TOO_DEEP),
        (nested(900), TOO_DEEP),
        ('{"q": NaN}', "finite"),
        ('{"q": "x\\u0000"}', HOLDS_NUL),
        ('{"x\\u0000": 1}', HOLDS_NUL),
    ],
    ids=["deep", "deep-inside", "one-too-deep", "900-deep", "nan", "nul-text", "nul-key"],
)
def test_a_subtasks_payload_is_bounded(admin_client, subtask, typed, message):
    url = f"/admin/agents/subtask/{subtask.pk}/change/"
    page = post_change(admin_client, url, payload=typed)
    refused(page, "payload", message)
    assert page.context["adminform"].form["payload"].value() == typed  # shown as typed
    subtask.refresh_from_db()
    assert subtask.payload == {"q": "x"}


def test_a_new_agent_with_deep_specialties_is_not_added(admin_client):
    page = admin_client.get("/admin/agents/agent/add/")
    data = {**as_posted(page), "name": "New", "slug": "new", "specialties": DEEP}
    refused(admin_client.post("/admin/agents/agent/add/", data), "specialties", TOO_DEEP)
    assert not Agent.objects.filter(slug="new").exists()


def test_a_nul_in_a_text_field_is_a_form_error(admin_client, subtask):
    url = f"/admin/agents/subtask/{subtask.pk}/change/"
    refused(post_change(admin_client, url, key="lo\x00ok"), "key", "Null characters")
    subtask.refresh_from_db()
    assert subtask.key == "look"


def test_json_within_the_bound_is_saved(admin_client, subtask):
    url = f"/admin/agents/subtask/{subtask.pk}/change/"
    inner = nested(JSON_MAX_DEPTH - 1)
    page = post_change(admin_client, url, payload='{"q": ' + inner + "}")
    assert page.status_code == 302, page.context["adminform"].form.errors
    subtask.refresh_from_db()
    assert subtask.payload == {"q": json.loads(inner)}


def test_every_json_field_the_admin_edits_is_bounded(rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    unbounded = [
        f"{model.__name__}.{name}"
        for model, model_admin in site._registry.items()
        for name, field in model_admin.get_form(request).base_fields.items()
        if isinstance(field, forms.JSONField) and not isinstance(field, BoundedJSONField)
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    "url",
    [
        "/admin/agents/agent/?model=a%00",
        "/admin/agents/job/?status=a%00",
        "/admin/agents/approvalrule/?kind=a%00",
        "/admin/webhooks/delivery/?event=a%00",
        "/admin/agents/apitoken/?name=a%00",
        "/admin/agents/mcpserver/?url=%00",
        "/admin/auth/user/?username=a%00",
        "/admin/auth/group/?q=a%00",
    ],
)
def test_a_list_filtered_on_a_nul_is_shown_unfiltered(admin_client, url):
    page = admin_client.get(url)
    assert page.status_code == 302
    assert page["Location"].endswith("?e=1")


def test_every_baton_admin_refuses_a_nul_filter(rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    ours = [
        model_admin
        for model, model_admin in site._registry.items()
        if model._meta.app_label in {"agents", "webhooks", "api", "auth"}
    ]
    assert ours
    assert all(issubclass(each.get_changelist(request), StorableChangeList) for each in ours)
