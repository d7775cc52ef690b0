"""Issuing and revoking an API token are audited actions (agents.actions.tokens): one audit
row each, from the tokens page, the admin or the domain, never the secret."""

import re

import pytest

from agents import actions
from agents.models import ApiToken, AuditEntry

from .cast import person

pytestmark = pytest.mark.django_db


def rows(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action))


def test_issuing_writes_one_audit_row_without_the_secret(users):
    token, secret = actions.issue_token(users["viewer"], "ci", user=users["operator"])
    [entry] = AuditEntry.objects.all()
    assert entry.action == "issue_token" and entry.actor == users["operator"]
    assert entry.detail == f"ci ({token.shown}) of carol"
    assert secret not in entry.detail and token.secret_hash not in entry.detail


def test_revoking_writes_one_audit_row_and_none_when_it_was_revoked(users):
    token, _ = ApiToken.objects.issue(users["viewer"], "ci")
    assert actions.revoke_token(token, user=users["viewer"])
    assert not actions.revoke_token(token, user=users["viewer"])
    [entry] = AuditEntry.objects.all()
    assert entry.action == "revoke_token" and entry.actor == users["viewer"]
    assert ApiToken.objects.get().is_revoked


def test_the_tokens_page_audits_issue_and_revoke(client, users):
    client.force_login(users["viewer"])
    assert client.post("/account/tokens/", {"name": "laptop"}).status_code == 201
    token = ApiToken.objects.get()
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    assert [e.actor for e in rows("issue_token")] == [users["viewer"]]
    assert [e.actor for e in rows("revoke_token")] == [users["viewer"]]


def test_the_admin_audits_issue_and_revoke(client, users):
    alice = person("alice")
    client.force_login(alice)
    response = client.post(
        "/admin/agents/apitoken/add/", {"owner": users["operator"].pk, "name": "bot"}
    )
    token = ApiToken.objects.get()
    secret = re.search(r'<pre id="token-secret">(\S+)</pre>', response.content.decode())[1]
    assert ApiToken.objects.authenticate(secret) == token
    client.post("/admin/agents/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert [e.actor for e in rows("issue_token")] == [alice]
    assert [e.actor for e in rows("revoke_token")] == [alice]
    assert AuditEntry.objects.count() == 2
