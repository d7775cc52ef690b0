"""Scorers through the API: readers list and read them; Operators create and edit them with
the pages' rules (errors point into `config`)."""

import pytest

from agents.models import AuditEntry, Scorer

from .api_support import PROBLEM, token_client

pytestmark = pytest.mark.django_db

NEW = {"name": "Order number", "kind": "regex", "config": {"pattern": r"#\d{4}"}}


@pytest.fixture
def operator(users):
    return token_client(users["operator"])


@pytest.fixture
def viewer(users):
    return token_client(users["viewer"])


def test_readers_list_and_read_scorers(viewer):
    Scorer.objects.create(name="Not empty", slug="not-empty", kind="length", config={"min": 1})
    [listed] = viewer.get("/api/v1/scorers").json()
    assert (listed["slug"], listed["kind"], listed["config"]) == ("not-empty", "length", {"min": 1})
    assert viewer.get("/api/v1/scorers/not-empty").json()["threshold"] == 0.5
    missing = viewer.get("/api/v1/scorers/nope")
    assert missing.status_code == 404 and missing["Content-Type"] == PROBLEM


def test_a_viewer_cannot_create_or_edit(viewer):
    Scorer.objects.create(name="Not empty", slug="not-empty", kind="length", config={"min": 1})
    assert viewer.post("/api/v1/scorers", NEW, format="json").status_code == 403
    patched = viewer.patch("/api/v1/scorers/not-empty", {"threshold": 1}, format="json")
    assert patched.status_code == 403
    assert Scorer.objects.count() == 1


def test_an_anonymous_request_is_refused():
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/scorers").status_code == 401


def test_an_operator_creates_a_scorer(operator, users):
    response = operator.post("/api/v1/scorers", NEW, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["slug"] == "order-number" and data["config"] == {"pattern": r"#\d{4}"}
    assert data["enabled"] is True and data["threshold"] == 0.5
    assert data["created_by"] == users["operator"].username
    assert AuditEntry.objects.filter(action="create_scorer", actor=users["operator"]).exists()


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({**NEW, "config": {"pattern": "(a+)+"}}, "#/config/pattern"),
        ({**NEW, "config": {}}, "#/config/pattern"),
        (
            {"name": "S", "kind": "json_schema", "config": {"schema": {"type": 3}}},
            "#/config/schema",
        ),
        ({"name": "L", "kind": "length", "config": {"min": 5, "max": 1}}, "#/config/max"),
        ({"name": "L", "kind": "length", "config": {"min": "lots"}}, "#/config/min"),
        ({**NEW, "threshold": 2}, "#/threshold"),
        ({**NEW, "kind": "nope"}, "#/kind"),
    ],
)
def test_bad_settings_are_422_pointing_at_them(operator, body, pointer):
    response = operator.post("/api/v1/scorers", body, format="json")
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == PROBLEM
    assert pointer in [error["pointer"] for error in response.json()["errors"]]
    assert not Scorer.objects.exists()


def test_an_operator_edits_a_scorer_and_its_settings_merge(operator, users):
    operator.post("/api/v1/scorers", {"name": "J", "kind": "judge", "config": {"rubric": "r"}})
    response = operator.patch(
        "/api/v1/scorers/j", {"threshold": 0.8, "config": {"model": "m-2"}}, format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["threshold"] == 0.8
    assert data["config"] == {"rubric": "r", "model": "m-2"}
    assert AuditEntry.objects.filter(action="edit_scorer", actor=users["operator"]).exists()


def test_a_taken_name_is_refused(operator):
    operator.post("/api/v1/scorers", NEW, format="json")
    again = operator.post("/api/v1/scorers", NEW, format="json")
    assert again.status_code == 422
    assert "#/name" in [error["pointer"] for error in again.json()["errors"]]


def test_scorers_are_in_the_openapi_schema(viewer):
    schema = viewer.get("/api/v1/openapi.json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/v1/scorers"])
    assert {"get", "patch"} <= set(schema["paths"]["/api/v1/scorers/{slug}"])
