"""The API asks for what the pages ask for: each endpoint against each role, and tokens."""

import pytest
from rest_framework.test import APIClient

from agents.models import Agent, JobStatus, SubtaskStatus

from .api_support import PROBLEM, planned_job, token_client
from .cast import person

pytestmark = pytest.mark.django_db

READERS = {"viewer", "operator", "manager"}
OPERATORS = {"operator"}
MANAGERS = {"manager"}
ANYONE = READERS | {"nobody"}

# (method, path, body, the roles that may): {review}, {failed}, {draft}, {check} are filled in.
ENDPOINTS = [
    ("get", "/api/v1/me", None, ANYONE),
    ("get", "/api/v1/jobs", None, READERS),
    ("post", "/api/v1/jobs", {"title": "t", "description": "ten chars or more"}, OPERATORS),
    ("get", "/api/v1/jobs/{review}", None, READERS),
    ("post", "/api/v1/jobs/{review}/cancel", None, OPERATORS),
    ("post", "/api/v1/jobs/{failed}/retry", None, OPERATORS),
    ("post", "/api/v1/jobs/{review}/approve", None, OPERATORS),
    (
        "post",
        "/api/v1/jobs/{review}/subtasks",
        {"key": "more", "type": "review", "description": "More"},
        OPERATORS,
    ),
    ("get", "/api/v1/subtasks/{draft}", None, READERS),
    ("patch", "/api/v1/subtasks/{draft}", {"description": "Changed"}, OPERATORS),
    ("delete", "/api/v1/subtasks/{draft}", None, OPERATORS),
    ("post", "/api/v1/subtasks/{check}/retry", None, OPERATORS),
    ("get", "/api/v1/jobs/{failed}/calls", None, READERS),
    ("get", "/api/v1/jobs/{failed}/state", None, READERS),
    ("get", "/api/v1/jobs/{failed}/state/versions", None, READERS),
    ("get", "/api/v1/jobs/{failed}/state/diff", None, READERS),
    ("get", "/api/v1/agents", None, READERS),
    ("post", "/api/v1/agents", {"name": "N", "slug": "n", "specialties": ["x"]}, MANAGERS),
    ("get", "/api/v1/agents/coder", None, READERS),
    ("patch", "/api/v1/agents/coder", {"model": "gpt-4.1"}, MANAGERS),
    ("post", "/api/v1/agents/coder/disable", None, MANAGERS),
    ("post", "/api/v1/agents/coder/enable", None, MANAGERS),
    ("get", "/api/v1/spend", None, READERS),
    ("get", "/api/v1/templates", None, READERS),
    (
        "post",
        "/api/v1/templates",
        {"name": "digest", "title": "Digest {date}", "description": "ten chars or more"},
        OPERATORS,
    ),
    ("get", "/api/v1/schedules", None, READERS),
    ("post", "/api/v1/jobs/bulk", {"action": "cancel", "tag": "none", "dry_run": True}, OPERATORS),
]
IDS = [f"{method.upper()} {path}" for method, path, _, _ in ENDPOINTS]


@pytest.fixture
def objects() -> dict[str, int]:
    review = planned_job(JobStatus.WAITING, review=True)
    failed = planned_job(JobStatus.FAILED)
    failed.subtasks.filter(key="check").update(status=SubtaskStatus.FAILED)
    Agent.objects.create(name="Researcher", slug="researcher", specialties=["research"])
    return {
        "review": review.pk,
        "failed": failed.pk,
        "draft": review.subtasks.get(key="draft").pk,
        "check": failed.subtasks.get(key="check").pk,
    }


def call(client: APIClient, method: str, path: str, body, objects: dict):
    return getattr(client, method)(path.format(**objects), body)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("role", ["viewer", "operator", "manager", "nobody"])
def test_each_role_may_do_what_its_pages_allow(users, objects, role, method, path, body, allowed):
    response = call(token_client(users[role]), method, path, body, objects)
    if role in allowed:
        assert response.status_code in (200, 201, 204), response.content
    else:
        assert response.status_code == 403, response.content
        assert response["Content-Type"] == PROBLEM


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=IDS)
def test_anonymous_requests_are_asked_to_authenticate(objects, method, path, body, allowed):
    response = call(APIClient(), method, path, body, objects)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=IDS)
def test_a_superuser_may_do_everything(objects, method, path, body, allowed):
    root = person("alice")
    response = call(token_client(root), method, path, body, objects)
    assert response.status_code in (200, 201, 204), response.content


def test_a_session_user_has_the_same_rights(users, objects):
    client = APIClient()
    client.force_login(users["viewer"])
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.post(f"/api/v1/jobs/{objects['review']}/cancel").status_code == 403


def test_a_revoked_token_loses_every_right(users, objects):
    client = token_client(users["operator"])
    users["operator"].api_tokens.get().revoke()
    for method, path, body, _ in ENDPOINTS:
        assert call(client, method, path, body, objects).status_code == 401


def test_rights_follow_the_owners_roles_as_they_change(users):
    client = token_client(users["nobody"])
    assert client.get("/api/v1/jobs").status_code == 403
    users["nobody"].groups.add(*users["viewer"].groups.all())
    assert client.get("/api/v1/jobs").status_code == 200
