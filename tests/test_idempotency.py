"""Idempotency keys on submissions: a retried request gets the job the first one made, the
same key with another body is refused, keys expire and belong to one user; twenty requests
at once through a real server make one job."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from agents import idempotency, recovery
from agents.models import IdempotencyKey, Job

from .api_support import PROBLEM, token_client
from .cast import user_in

NEW_JOB = {"title": "Nightly digest", "description": "Summarise what changed in the repo."}
KEY = {"HTTP_IDEMPOTENCY_KEY": "digest-2026-12-07"}


def submit(client, body: dict = NEW_JOB, **headers):
    return client.post("/api/v1/jobs", body, **{**KEY, **headers})


@pytest.mark.django_db
def test_the_same_key_and_body_again_is_the_same_job_marked_as_a_replay(operator_api):
    first = submit(operator_api)
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    again = submit(operator_api)
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert Job.objects.count() == 1
    assert IdempotencyKey.objects.get().job_id == first.json()["id"]


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_422_and_makes_nothing(operator_api):
    first = submit(operator_api)
    other = submit(operator_api, {**NEW_JOB, "priority": 1})
    assert other.status_code == 422
    assert other["Content-Type"] == PROBLEM
    problem = other.json()
    assert problem["type"] == "http://testserver/api/v1/problems/idempotency-key-reused"
    assert "digest-2026-12-07" in problem["detail"] and "another request" in problem["detail"]
    assert list(Job.objects.values_list("pk", flat=True)) == [first.json()["id"]]


@pytest.mark.django_db
def test_without_a_key_each_request_is_a_new_job(operator_api):
    assert operator_api.post("/api/v1/jobs", NEW_JOB).status_code == 201
    assert operator_api.post("/api/v1/jobs", NEW_JOB).status_code == 201
    assert Job.objects.count() == 2 and not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_an_expired_key_makes_a_new_job(operator_api, settings):
    first = submit(operator_api).json()["id"]
    past = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_S + 1)
    IdempotencyKey.objects.update(created_at=past)
    again = submit(operator_api)
    assert again.status_code == 201
    assert again.json()["id"] != first
    assert IdempotencyKey.objects.get().job_id == again.json()["id"]


@pytest.mark.django_db
def test_keys_belong_to_one_user(operator_api):
    mine = submit(operator_api).json()["id"]
    theirs = submit(token_client(user_in("Operators")), {**NEW_JOB, "priority": 1})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine
    assert IdempotencyKey.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "with space", "é", "x" * 256])
def test_a_key_that_is_not_visible_ascii_up_to_255_is_a_422(operator_api, key):
    response = submit(operator_api, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["parameter"] == "Idempotency-Key"
    assert not Job.objects.exists() and not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_request_refused_by_the_limit_keeps_no_key(operator_api, settings):
    settings.JOB_SUBMISSIONS_PER_HOUR = 1
    assert operator_api.post("/api/v1/jobs", NEW_JOB).status_code == 201
    assert submit(operator_api).status_code == 429
    assert not IdempotencyKey.objects.exists()
    settings.JOB_SUBMISSIONS_PER_HOUR = 0
    assert submit(operator_api).status_code == 201  # the retry is a first request


@pytest.mark.django_db
def test_a_bad_body_keeps_no_key(operator_api):
    assert submit(operator_api, {"title": "x"}).status_code == 422
    assert not IdempotencyKey.objects.exists()
    assert submit(operator_api).status_code == 201


def test_the_fingerprint_is_of_the_request_not_of_its_key_order():
    a = idempotency.fingerprint("post", "/api/v1/jobs", {"a": 1, "b": [1, 2]})
    assert a == idempotency.fingerprint("POST", "/api/v1/jobs", {"b": [1, 2], "a": 1})
    assert a != idempotency.fingerprint("POST", "/api/v1/jobs", {"a": 1, "b": [2, 1]})
    assert a != idempotency.fingerprint("POST", "/api/v1/templates/x/submit", {"a": 1, "b": [1, 2]})
    assert len(a) == 64


@pytest.mark.django_db
def test_expired_keys_are_purged_by_the_recovery_pass(operator_api, settings):
    submit(operator_api)
    submit(operator_api, HTTP_IDEMPOTENCY_KEY="kept")
    old = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_S + 1)
    IdempotencyKey.objects.filter(key=KEY["HTTP_IDEMPOTENCY_KEY"]).update(created_at=old)
    assert recovery._pass_hooks["idempotency_keys"] is idempotency.purge_expired
    assert idempotency.purge_expired() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["kept"]
    assert Job.objects.count() == 2  # the jobs stay


def test_twenty_concurrent_requests_with_one_key_make_one_job(live_server, users, no_broker):
    """Real threads against a real server: each request runs in its own server thread, with
    its own database connection, so the unique constraint is what decides."""
    secret = token_client(users["operator"]).secret
    start = threading.Barrier(20)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server.url, timeout=60) as http:
            start.wait()
            return http.post(
                "/api/v1/jobs",
                json=NEW_JOB,
                headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "one-key"},
            )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(post, range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201], [
        r.text for r in responses if r.status_code not in (200, 201)
    ]
    assert Job.objects.count() == 1
    job = Job.objects.get()
    assert {r.json()["id"] for r in responses} == {job.pk}
    replays = [r for r in responses if r.status_code == 200]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in replays)
    assert IdempotencyKey.objects.get().job_id == job.pk
