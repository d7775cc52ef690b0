"""Every API error is an RFC 9457 problem: type, title, status, detail, instance."""

import pytest
from rest_framework.test import APIClient

from agents.models import JobStatus

from .api_support import PROBLEM, make_job, token_client

pytestmark = pytest.mark.django_db

MEMBERS = {"type", "title", "status", "detail", "instance"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert MEMBERS <= problem.keys() <= MEMBERS | {"errors"}
    assert problem["status"] == status
    assert problem["instance"] == response.wsgi_request.get_full_path()
    assert problem["title"] and problem["detail"]
    return problem


def test_401(users):
    problem = assert_problem(APIClient().get("/api/v1/jobs?q=x"), 401)
    assert problem == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "Authentication credentials were not provided.",
        "instance": "/api/v1/jobs?q=x",
    }


def test_403(users):
    problem = assert_problem(token_client(users["viewer"]).post("/api/v1/jobs", {}), 403)
    assert problem["type"] == "about:blank" and problem["title"] == "Forbidden"


def test_404_for_a_missing_row_and_for_a_path_the_api_does_not_serve(operator_api):
    assert assert_problem(operator_api.get("/api/v1/subtasks/404"), 404)["detail"] == (
        "No subtask 404."
    )
    assert_problem(operator_api.get("/api/v1/no/such/thing"), 404)
    assert_problem(APIClient().delete("/api/v1/nothing-here"), 404)


def test_405(operator_api):
    problem = assert_problem(operator_api.delete("/api/v1/jobs"), 405)
    assert problem["title"] == "Method Not Allowed"
    assert_problem(operator_api.options("/api/v1/jobs"), 405)


def test_409_names_the_state(operator_api):
    job = make_job(JobStatus.COMPLETED)
    problem = assert_problem(operator_api.post(f"/api/v1/jobs/{job.pk}/cancel"), 409)
    assert problem["type"] == "http://testserver/api/v1/problems/conflict"
    assert problem["title"] == "Not allowed in this state"
    assert "completed" in problem["detail"]


def test_422_lists_field_errors_with_pointers(operator_api):
    body = {"title": "x" * 201, "description": "long enough text", "budget_tokens": -1}
    problem = assert_problem(operator_api.post("/api/v1/jobs", body), 422)
    assert sorted(problem["errors"], key=lambda e: e["pointer"]) == [
        {
            "detail": "Ensure this value is greater than or equal to 0.",
            "code": "min_value",
            "pointer": "#/budget_tokens",
        },
        {
            "detail": "Ensure this field has no more than 200 characters.",
            "code": "max_length",
            "pointer": "#/title",
        },
    ]


def test_422_points_into_lists(users):
    manager = token_client(users["manager"])
    body = {"name": "N", "slug": "n", "specialties": ["ok", "a,b"]}
    problem = assert_problem(manager.post("/api/v1/agents", body), 422)
    assert [e["pointer"] for e in problem["errors"]] == ["#/specialties/1"]


def test_415_for_a_body_that_is_not_json(operator_api):
    response = operator_api.post("/api/v1/jobs", "title=x", content_type="text/plain")
    assert_problem(response, 415)


def test_problem_types_say_what_they_mean(operator_api):
    response = APIClient().get("/api/v1/problems/conflict")
    assert response.status_code == 200
    assert response.json()["title"] == "Not allowed in this state"
    assert_problem(APIClient().get("/api/v1/problems/nonsense"), 404)


def test_an_unexpected_error_is_a_500_problem_and_is_logged(operator_api, monkeypatch, caplog):
    from api.views import meta

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(meta.Me, "get", broken)
    problem = assert_problem(operator_api.get("/api/v1/me"), 500)
    assert "boom" not in problem["detail"]
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)
