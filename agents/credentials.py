"""Personal API tokens: a token acts as its owner, with the owner's roles. Every face that
takes `Authorization: Bearer <token>` (the API, the event stream) asks `bearer` here.

Only a hash of the secret is stored; the secret is shown once, when the token is issued.
The model was the api app's: it keeps that table (api_apitoken).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

SCHEME = "baton"
KEYWORD = "Bearer"
PREFIX_BYTES = 6  # 12 hex characters: the part of a token that names it, shown in lists
SECRET_BYTES = 32
LAST_USED_EVERY = timedelta(minutes=1)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(secret: str) -> str | None:
    """The prefix of a well-formed `baton_<prefix>_<random>` secret, else None."""
    scheme, _, rest = secret.partition("_")
    prefix, _, random_part = rest.partition("_")
    if scheme != SCHEME or len(prefix) != PREFIX_BYTES * 2 or not random_part:
        return None
    return prefix


class ApiTokenQuerySet(models.QuerySet):
    def issue(self, owner, name: str) -> tuple[ApiToken, str]:
        """A new token for `owner` and its secret, which is never stored nor shown again."""
        token = ApiToken(owner=owner, name=name)
        return token, token.set_secret_and_save()

    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def authenticate(self, secret: str) -> ApiToken | None:
        """The token whose secret this is (revoked or not), else None."""
        prefix = parse(secret)
        if prefix is None:
            return None
        token = self.select_related("owner").filter(prefix=prefix).first()
        if token is None or not hmac.compare_digest(token.secret_hash, digest(secret)):
            return None
        return token


class ApiToken(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “CI”.")
    prefix = models.CharField(max_length=PREFIX_BYTES * 2, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        db_table = "api_apitoken"
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.shown})"

    @property
    def shown(self) -> str:
        """What lists show: enough to tell tokens apart, nothing to use."""
        return f"{SCHEME}_{self.prefix}_…" if self.prefix else "–"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def set_secret_and_save(self) -> str:
        """Draw the secret, store its hash, save; returns the secret (shown once)."""
        for _ in range(5):
            self.prefix = secrets.token_hex(PREFIX_BYTES)
            secret = f"{SCHEME}_{self.prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
            self.secret_hash = digest(secret)
            try:
                with transaction.atomic():
                    self.save()
            except IntegrityError:  # the prefix was taken: draw again
                continue
            return secret
        raise IntegrityError("no free token prefix after 5 draws")

    def revoke(self) -> bool:
        """False if it was revoked already."""
        now = timezone.now()
        revoked = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if revoked:
            self.revoked_at = now
        return bool(revoked)

    def touch(self) -> None:
        """Record a use, writing at most once a minute per token."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_EVERY:
            return
        stale = models.Q(last_used_at__isnull=True) | models.Q(
            last_used_at__lt=now - LAST_USED_EVERY
        )
        ApiToken.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now


class CredentialRefused(Exception):
    """A bearer token that does not authenticate; the message says why, to the client."""


def bearer(authorization: str) -> tuple[object, ApiToken] | None:
    """The owner and token of an `Authorization: Bearer <token>` header's value; None when
    it names no bearer token (a session may still authenticate the request)."""
    header = authorization.split()
    if not header or header[0].lower() != KEYWORD.lower():
        return None
    if len(header) != 2:
        raise CredentialRefused(f"Give the token as `{KEYWORD} <token>`.")
    return token_user(header[1])


def token_user(secret: str) -> tuple[object, ApiToken]:
    """The owner and token of a secret that may act now; a use is recorded."""
    token = ApiToken.objects.authenticate(secret)
    if token is None:
        raise CredentialRefused("This token is not valid.")
    if token.is_revoked:
        raise CredentialRefused("This token was revoked.")
    if not token.owner.is_active:
        raise CredentialRefused("This token's owner is inactive.")
    token.touch()
    return token.owner, token
