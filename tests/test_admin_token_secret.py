"""A secret issued in the admin (an API token, a webhook's signing key) is shown once in the
answer to the add form, never carried by a cookie: the messages cookie is signed, not
encrypted, and the session outlives the page."""

import re

import pytest

from agents.models import ApiToken
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


def assert_only_in_the_page(client, response, secret: str) -> None:
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert secret in response.content.decode()
    assert "messages" not in response.cookies
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    assert all(secret not in str(value) for value in client.session.values())
    # Nor on the next page: nothing was queued to be shown there.
    assert secret not in client.get("/admin/").content.decode()


def test_a_token_made_in_the_admin_is_shown_in_the_answer_not_in_a_cookie(client, superuser):
    response = client.post("/admin/agents/apitoken/add/", {"owner": superuser.pk, "name": "bot"})
    secret = re.search(r'<pre id="token-secret">(\S+)</pre>', response.content.decode())[1]
    assert ApiToken.objects.authenticate(secret) == ApiToken.objects.get(name="bot")
    assert_only_in_the_page(client, response, secret)


def test_a_webhook_made_in_the_admin_shows_its_secret_the_same_way(client, superuser, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    response = client.post(
        "/admin/webhooks/endpoint/add/",
        {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"], "enabled": "on"},
    )
    assert_only_in_the_page(client, response, Endpoint.objects.get().secret)


def test_the_tokens_old_admin_address_leads_to_the_new_one(client, superuser):
    """Tokens moved from the api app to agents: a bookmark of the old admin page still works."""
    token, _ = ApiToken.objects.issue(superuser, "old link")
    response = client.get(f"/admin/api/apitoken/{token.pk}/change/")
    assert response.status_code == 301
    assert response["Location"] == f"/admin/agents/apitoken/{token.pk}/change/"
    assert client.get(response["Location"]).status_code == 200
