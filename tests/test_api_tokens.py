"""Personal API tokens: shown once, stored hashed, revocable, acting as their owner."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import ApiToken

from .api_support import PROBLEM, token_client
from .cast import person

pytestmark = pytest.mark.django_db


def test_only_a_hash_of_the_secret_is_kept():
    alice = person("alice")
    token, secret = ApiToken.objects.issue(alice, "ci")
    token.refresh_from_db()
    assert secret.startswith(f"baton_{token.prefix}_") and len(secret) > 50
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {str(v) for v in ApiToken.objects.values().get().values()}
    assert token.shown == f"baton_{token.prefix}_…"


def test_a_token_finds_its_row_only_with_the_whole_secret():
    alice = person("alice")
    token, secret = ApiToken.objects.issue(alice, "ci")
    assert ApiToken.objects.authenticate(secret) == token
    assert ApiToken.objects.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert ApiToken.objects.authenticate(f"baton_{token.prefix}_") is None
    assert ApiToken.objects.authenticate("not-a-token") is None


def test_a_token_acts_as_its_owner_with_their_roles(users):
    client = token_client(users["viewer"], name="dashboards")
    me = client.get("/api/v1/me").json()
    assert me["username"] == "carol"
    assert me["roles"] == ["Viewers"]
    assert "agents.view_job" in me["permissions"] and "agents.add_job" not in me["permissions"]
    assert me["token"] == "dashboards"


def test_a_viewers_token_cannot_submit(users):
    response = token_client(users["viewer"]).post(
        "/api/v1/jobs", {"title": "t", "description": "long enough"}
    )
    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer baton_000000000000_nope", "Bearer a b", "Token abc"],
)
def test_no_valid_token_is_a_401_saying_how_to_authenticate(users, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response["Content-Type"] == PROBLEM
    assert response.json()["status"] == 401


def test_a_revoked_token_is_refused(users):
    client = token_client(users["operator"])
    assert client.get("/api/v1/jobs").status_code == 200
    token = ApiToken.objects.get()
    assert token.revoke()
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json()["detail"] == "This token was revoked."
    assert not token.revoke()  # once is enough


def test_the_token_of_an_inactive_user_is_refused(users):
    client = token_client(users["operator"])
    User.objects.filter(username="bob").update(is_active=False)
    assert client.get("/api/v1/jobs").status_code == 401


def test_last_use_is_written_at_most_once_a_minute(users):
    client = token_client(users["viewer"])
    client.get("/api/v1/me")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    client.get("/api/v1/me")
    assert ApiToken.objects.get().last_used_at == first
    earlier = timezone.now() - timedelta(minutes=2)
    ApiToken.objects.update(last_used_at=earlier)
    client.get("/api/v1/me")
    assert ApiToken.objects.get().last_used_at > earlier


def test_the_session_works_too_with_csrf_for_changes(users):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(users["operator"])
    assert client.get("/api/v1/jobs").status_code == 200
    body = {"title": "From the browser", "description": "Submitted with a session."}
    refused = client.post("/api/v1/jobs", body, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get("/api/v1/docs/")  # sets the CSRF cookie, as the docs page does
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/jobs", body, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_a_user_creates_a_token_and_sees_its_secret_once(client, users):
    client.force_login(users["viewer"])
    page = client.post("/account/tokens/", {"name": "my laptop"})
    assert page.status_code == 201
    assert page["Cache-Control"] == "no-store"
    secret = page.context["secret"]
    assert secret in page.content.decode()
    listed = client.get("/account/tokens/").content.decode()
    assert "my laptop" in listed and ApiToken.objects.get().shown in listed
    assert secret not in listed
    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/me").status_code == 200


def test_a_token_needs_a_name(client, users):
    client.force_login(users["viewer"])
    assert client.post("/account/tokens/", {"name": ""}).status_code == 400
    assert not ApiToken.objects.exists()


def test_a_user_revokes_their_token_and_no_one_elses(client, users):
    mine, _ = ApiToken.objects.issue(users["viewer"], "mine")
    theirs, _ = ApiToken.objects.issue(users["operator"], "theirs")
    client.force_login(users["viewer"])
    assert client.post(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{mine.pk}/revoke/").status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.is_revoked and not theirs.is_revoked
    assert "revoked" in client.get("/account/tokens/").content.decode()


def test_the_tokens_page_needs_a_login(client):
    assert client.get("/account/tokens/").status_code == 302


def test_the_nav_links_the_tokens_and_the_docs(client, users):
    client.force_login(users["viewer"])
    page = client.get("/account/tokens/").content.decode()
    assert 'href="/account/tokens/"' in page and 'href="/api/v1/docs/"' in page


def test_an_admin_issues_a_token_and_sees_the_secret_once(client, users):
    admin = person("alice")
    client.force_login(admin)
    response = client.post(
        "/admin/agents/apitoken/add/", {"owner": users["operator"].pk, "name": "deploy bot"}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert token.owner == users["operator"] and token.name == "deploy bot"
    secret = re.search(r'<pre id="token-secret">(\S+)</pre>', response.content.decode())[1]
    assert ApiToken.objects.authenticate(secret) == token
    again = client.get(f"/admin/agents/apitoken/{token.pk}/change/").content.decode()
    assert secret not in again


def test_an_admin_revokes_tokens(client, users):
    token, _ = ApiToken.objects.issue(users["operator"], "old")
    client.force_login(person("alice"))
    client.post(
        "/admin/agents/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.is_revoked
