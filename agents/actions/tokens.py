"""Issuing and revoking API tokens (agents.credentials), from the tokens page or the admin:
each one transaction and one audit row, which names the token but never holds its secret."""

from __future__ import annotations

from django.db import transaction

from ..audit import audit
from ..credentials import ApiToken


def issue_token(owner, name: str, *, user=None) -> tuple[ApiToken, str]:
    """A new token for `owner` and its secret, shown once and never stored."""
    with transaction.atomic():
        token, secret = ApiToken.objects.issue(owner, name)
        audit("issue_token", actor=user, detail=_named(token))
    return token, secret


def revoke_token(token: ApiToken, *, user=None) -> bool:
    """False (nothing written) if it was revoked already."""
    with transaction.atomic():
        revoked = token.revoke()
        if revoked:
            audit("revoke_token", actor=user, detail=_named(token))
    return revoked


def _named(token: ApiToken) -> str:
    return f"{token.name} ({token.shown}) of {token.owner.get_username()}"
