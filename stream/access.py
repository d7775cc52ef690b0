"""Who may hold an event stream, and how many each may hold.

A request's credential (a bearer token's prefix, or the session key) is read without a
query, so a client over its limit is refused before any database work. The queries that
follow run on a small pool of this module's own, never on the one thread Channels shares
between every `database_sync_to_async` call: a crowd of streams opening waits at most for
each other, not the rest of the process. A stream is checked again while it lasts
(`still_allowed`): a revoked token, a closed session or a lost role ends it.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import import_module

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.contrib import auth
from django.db import connections
from django.http import HttpRequest

from agents.credentials import CredentialRefused, parse, token_user
from agents.models import ApiToken, Job
from agents.roles import READ_PERMISSIONS

THREADS = 4
_pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="sse-access")
TOTAL = "*"
NO_CREDENTIAL = "Send an API token (Authorization: Bearer …) or log in."


def off_loop(function):
    """`function` on this module's pool, with Channels' care for stale connections."""
    return DatabaseSyncToAsync(function, thread_sensitive=False, executor=_pool)


@dataclass(frozen=True)
class Credential:
    """What a request presents, before anything is looked up."""

    key: str  # its streams are counted under this
    secret: str = ""  # a bearer token
    session_key: str = ""


@dataclass(frozen=True)
class Holder:
    """Whom a stream was opened for, with what: enough to check them again."""

    user_id: int
    token_id: int | None = None
    session_key: str = ""

    @property
    def key(self) -> str:
        return f"user:{self.user_id}"


def credential(request: HttpRequest) -> tuple[Credential | None, str]:
    """The bearer token when one is sent, else the session (the API's order); or why not."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "").split()
    if authorization and authorization[0].lower() == "bearer":
        if len(authorization) != 2:
            return None, "Give the token as `Bearer <token>`."
        prefix = parse(authorization[1])
        if prefix is None:
            return None, "This token is not valid."
        return Credential(f"token:{prefix}", secret=authorization[1]), ""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    if not session_key:
        return None, NO_CREDENTIAL
    return Credential(f"session:{session_key}", session_key=session_key), ""


@off_loop
def authenticate(credential: Credential) -> tuple[Holder | None, int, str]:
    """The holder, or the status (401, 403) and why not."""
    if credential.secret:
        try:
            user, token = token_user(credential.secret)
        except CredentialRefused as refused:
            return None, 401, str(refused)
        holder = Holder(user.pk, token_id=token.pk)
    else:
        user = _session_user(credential.session_key)
        if not user.is_authenticated:
            return None, 401, NO_CREDENTIAL
        holder = Holder(user.pk, session_key=credential.session_key)
    # The events carry subtasks, calls and state versions: the job page's permissions.
    if not user.has_perms(READ_PERMISSIONS["job"]):
        return None, 403, "Reading events needs the Viewers role (or any role)."
    return holder, 200, ""


@off_loop
def still_allowed(holder: Holder) -> bool:
    """Whether the token is still valid (or the session still logged in) and its user
    still has the job page's permissions."""
    if holder.token_id is not None:
        token = ApiToken.objects.select_related("owner").filter(pk=holder.token_id).first()
        if token is None or token.is_revoked:
            return False
        user = token.owner
    else:
        user = _session_user(holder.session_key)
        if user.pk != holder.user_id:
            return False
    return user.is_active and user.has_perms(READ_PERMISSIONS["job"])


def _session_user(session_key: str):
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(request)  # anonymous once logged out, or the password changed


@off_loop
def job_status(job_id: int) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


def close_connections() -> None:
    """Each of the pool's threads closes its database connections (tests do, before their
    database is dropped)."""
    everyone = threading.Barrier(THREADS)  # holds each call on a thread of its own

    def close() -> None:
        connections.close_all()
        everyone.wait(timeout=10)

    for done in [_pool.submit(close) for _ in range(THREADS)]:
        done.result()


class Places:
    """The streams this process holds, counted per key: `TOTAL` (every stream, up to
    SSE_MAX_STREAMS) and each credential and user (up to SSE_MAX_PER_USER each)."""

    def __init__(self) -> None:
        self.held: Counter[str] = Counter()

    def take(self, key: str) -> bool:
        limit = settings.SSE_MAX_STREAMS if key == TOTAL else settings.SSE_MAX_PER_USER
        if self.held[key] >= limit:
            return False
        self.held[key] += 1
        return True

    def give_back(self, key: str) -> None:
        self.held[key] -= 1
        if self.held[key] <= 0:
            del self.held[key]


places = Places()
