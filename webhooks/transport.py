"""Everything that leaves Baton for a webhook endpoint: signing, the target check, the POST.

Signatures follow Standard Webhooks (standardwebhooks.com): the secret is `whsec_` + base64
of its key; `webhook-signature` is `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
The call itself is agents.outbound's: the target resolved once, every address checked, the
request sent to a checked address (Host and TLS name the URL's), no redirect followed, at
most EXCERPT_BYTES of the answer read, and the whole call within WEBHOOK_TIMEOUT_S.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import httpx

from agents import outbound
from agents.addresses import Address
from agents.addresses import refusal as refusal  # the check, for tests and forms

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
EXCERPT_BYTES = 1024
USER_AGENT = "Baton-Webhooks/1"

# Refused: never retried (a private address, a bad URL); Unreachable: worth another try.
Refused = outbound.Refused
Unreachable = outbound.Unreachable
SETTING = "WEBHOOK_ALLOW_PRIVATE"
NO_CREDENTIALS = ": the signature says the call is Baton's"


@dataclass(frozen=True)
class Reply:
    status: int
    latency_s: float
    excerpt: str
    retry_after: float | None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; ValueError when it is not one."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "A secret is whsec_ followed by base64 (as Standard Webhooks has it)."
        ) from None
    if not 24 <= len(key) <= 64:
        raise ValueError("A secret's key is 24 to 64 bytes (32 to 88 base64 characters).")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def resolve(url: str, *, allow_private: bool) -> list[Address]:
    """Every address the URL's host has, each checked; Refused or Unreachable otherwise."""
    found = outbound.check(
        url, allow_private=allow_private, setting=SETTING, credentials_hint=NO_CREDENTIALS
    )
    return list(found.addresses)


def post(
    url: str, body: str, headers: dict[str, str], *, allow_private: bool, timeout: float
) -> Reply:
    """POST `body` to one of the URL's checked addresses, all within `timeout` seconds; the
    answer's status, and its start as an excerpt (what arrived, when it broke off)."""
    answer = outbound.request(
        "POST",
        url,
        allow_private=allow_private,
        setting=SETTING,
        deadline_s=timeout,
        max_bytes=EXCERPT_BYTES,
        headers={**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT},
        content=body.encode(),
        credentials_hint=NO_CREDENTIALS,
    )
    excerpt = answer.body.decode("utf-8", errors="replace")
    return Reply(answer.status, answer.latency_s, excerpt, _seconds(answer.headers))


def _seconds(headers: httpx.Headers) -> float | None:
    try:
        return max(float(headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None
