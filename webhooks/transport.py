"""Everything that leaves Baton for a webhook endpoint: signing, the target check, the POST.

Signatures follow Standard Webhooks (standardwebhooks.com): the secret is `whsec_` + base64
of its key; `webhook-signature` is `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
A target is resolved once, every address checked, and the request sent to a checked address
(the Host header and TLS name stay the URL's): a DNS answer that changes between the check
and the connection cannot point the request inside the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from agents.addresses import lookup, refusal

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
EXCERPT_BYTES = 1024
USER_AGENT = "Baton-Webhooks/1"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The target may not be called (a private address, a bad URL): never retried."""


class Unreachable(Exception):
    """No answer (connection refused, DNS, timeout): worth another try."""


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
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("Give an http:// or https:// URL.")
    if parts.username or parts.password:
        raise Refused("Put no credentials in the URL: the signature says the call is Baton's.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = lookup(parts.hostname, port)
    except (LookupError, ValueError) as exc:
        raise Unreachable(str(exc)) from None
    if not allow_private:
        for address in addresses:
            if reason := refusal(address):
                raise Refused(
                    f"{parts.hostname} resolves to {address}, a {reason} address: Baton does "
                    "not call into private networks (WEBHOOK_ALLOW_PRIVATE)."
                )
    return addresses


def post(
    url: str, body: str, headers: dict[str, str], *, allow_private: bool, timeout: float
) -> Reply:
    """POST `body` to one of the URL's checked addresses; redirects are not followed."""
    parts = urlsplit(url)
    addresses = resolve(url, allow_private=allow_private)
    headers = {
        **headers,
        "Host": parts.netloc,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    error: Exception | None = None
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for address in addresses:
            host = f"[{address}]" if address.version == 6 else str(address)
            netloc = f"{host}:{parts.port}" if parts.port else host
            target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            started = time.monotonic()
            try:
                with client.stream(
                    "POST", target, content=body.encode(), headers=headers, extensions=extensions
                ) as response:
                    latency = time.monotonic() - started
                    return Reply(
                        response.status_code, latency, _excerpt(response), _seconds(response)
                    )
            except httpx.TimeoutException as exc:
                raise Unreachable(
                    f"No answer within {timeout:g} s ({type(exc).__name__})."
                ) from None
            except httpx.TransportError as exc:
                error = exc  # try the host's next address
    raise Unreachable(f"Could not connect: {error or 'no address'}.")


def _excerpt(response: httpx.Response) -> str:
    """The start of the answer, at most EXCERPT_BYTES; the rest is never read."""
    taken = b""
    try:
        for chunk in response.iter_bytes():
            taken += chunk
            if len(taken) >= EXCERPT_BYTES:
                break
    except httpx.HTTPError:
        pass  # what arrived is enough: the status is what counts
    return taken[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _seconds(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None
