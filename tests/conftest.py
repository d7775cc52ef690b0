import asyncio
import os
import time

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import CommandError
from django.db import connections
from django.test import TransactionTestCase

from agents import enqueue, team
from agents.models import Job, Subtask
from stream import access

from .api_support import token_client
from .cast import CAST, person, role_users
from .inprocess import capture_messages, simulated_llm
from .stack import start_stack
from .webhook_receiver import capture_sent_tasks, running_receiver

IN_CI = os.environ.get("CI") == "true"


def _flush_retrying_deadlocks(flush):
    """Transactional tests end by TRUNCATE-ing every table while a stack's processes may
    still read (a reconciler pass, a live render): PostgreSQL can then pick the flush as a
    deadlock's victim. The flush is simply tried again."""

    def teardown(self) -> None:
        for attempt in range(3):
            try:
                return flush(self)
            except CommandError as exc:
                if attempt == 2 or "deadlock" not in str(exc.__cause__ or ""):
                    raise
                time.sleep(0.5)

    return teardown


TransactionTestCase._fixture_teardown = _flush_retrying_deadlocks(
    TransactionTestCase._fixture_teardown
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # In CI every browser and service test must run: a skip is a failure there.
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which requires every test to run: {report.longrepr}"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # MD5 for speed; PBKDF2 too, for users that the stack's processes must log in.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Baton running as real processes against the test database and the LLM simulator."""
    with django_db_blocker.unblock():
        running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, tuple]]:
    """The steps' Celery messages, (short name, args), kept instead of sent: `inprocess.deliver`
    runs them."""
    return capture_messages(monkeypatch)


@pytest.fixture
def simulator(settings):
    """The LLM simulator on a free port, this process's calls sent to it (and the local
    limiter: a test holds no Redis slot)."""
    with simulated_llm(settings) as server:
        yield server


@pytest.fixture
def collector(settings):
    """An OTLP/HTTP trace receiver, this process's tracing sent to it during the test."""
    from .otlp_collector import collecting

    with collecting(settings) as server:
        yield server


@pytest.fixture
def sent_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """Every Celery message by its full task name (webhooks' `deliver` too), kept instead of
    sent."""
    return capture_sent_tasks(monkeypatch)


@pytest.fixture
def users(db) -> dict[str, User]:
    """The cast by role (operator, viewer, manager, nobody), as the API tests name them."""
    return role_users()


def logged_in(client, name: str) -> User:
    user = person(name)
    client.force_login(user)
    return user


@pytest.fixture
def operator(client) -> User:
    """bob, an Operator, logged in to the pages."""
    return logged_in(client, "bob")


@pytest.fixture
def viewer(client) -> User:
    """carol, a Viewer, logged in: she may read every page."""
    return logged_in(client, "carol")


@pytest.fixture
def manager(client) -> User:
    """dave, an Agent manager, logged in to the pages."""
    return logged_in(client, "dave")


@pytest.fixture
def superuser(client) -> User:
    """alice, a superuser, logged in: the admin's pages too."""
    return logged_in(client, "alice")


@pytest.fixture
def admin_user(db) -> User:
    """pytest-django's admin user (and so its admin_client) is alice, the cast's superuser."""
    return person("alice")


@pytest.fixture
def operator_api(users):
    """An API client that sends a token of bob's, the operator."""
    return token_client(users["operator"])


@pytest.fixture
def no_broker(monkeypatch) -> None:
    """Messages to Celery are dropped: the test runs no worker and needs no broker."""
    monkeypatch.setattr(enqueue, "send_now", lambda *args, **kwargs: None)


@pytest.fixture
def receiver(settings):
    """A webhook receiver on 127.0.0.1, which deliveries may reach; retries come fast."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_BASE_S = 0.01
    settings.WEBHOOK_TIMEOUT_S = 2
    with running_receiver() as running:
        yield running


@pytest.fixture(params=["memory", "redis"])
def feed_kind(request, settings):
    """The event streams' feed: in this process, or on Redis (skipped without REDIS_URL)."""
    settings.SSE_KEEPALIVE_S = 0.3
    if request.param == "redis":
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.skip("the Redis feed needs REDIS_URL")
        settings.REDIS_URL = url
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest_asyncio.fixture
async def close_thread_connections():
    """The ORM calls of the stream tests run in asgiref's one sync thread, the streams' in
    stream.access's: their connections are closed before the test database is dropped."""
    yield
    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(access.close_connections)  # and those of the streams' own threads


@pytest.fixture
def seeded(django_db_blocker):
    """The default team, the roles and the cast (tests/cast.py), made anew: transactional
    tests flush."""
    with django_db_blocker.unblock():
        team.seed()
        # The stack's processes log them in, and know only PBKDF2.
        users = {name: person(name, hasher="pbkdf2_sha256") for name in CAST}
    yield users
    # Let the stack finish what the test started: flushing tables under a worker that is
    # still writing deadlocks.
    with django_db_blocker.unblock():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            Job.objects.filter(
                status__in=("queued", "planning", "working", "synthesizing")
            ).exists()
            or Subtask.objects.filter(status__in=("queued", "working")).exists()
            or _live_batches_pending()
        ):
            time.sleep(0.2)
        # The last changes' pages may still be rendering (their reads would deadlock with
        # the flush's TRUNCATE): give the renderer its window and a render.
        time.sleep(settings.LIVE_WINDOW_S + 0.5)


def _live_batches_pending() -> bool:
    """Live changes forwarded to a web process and not yet taken by its renderer."""
    if not settings.REDIS_URL:
        return False
    from agents.redisconn import redis_client
    from dashboard.live import BATCHES_KEY

    return bool(redis_client(settings.REDIS_URL).llen(BATCHES_KEY))


@pytest.fixture(scope="module")
def slow_stack(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """A stack of the module's own whose simulator answers after its LATENCY_MS. Exclusive:
    the session stack's workers would otherwise take its jobs to their own, fast simulator."""
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("slow"), latency_ms=request.module.LATENCY_MS, exclusive=True
        )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, one per browser test module."""
    from .browser import chromium

    with chromium() as running:
        yield running


@pytest.fixture
def pages_closed(browser):
    """Each browser test leaves no context behind for the next."""
    from .browser import close_contexts

    yield
    close_contexts(browser)


def pytest_terminal_summary(terminalreporter) -> None:
    """Say plainly what did not run and how to run it (skips are easy to miss with -q)."""
    skipped = terminalreporter.stats.get("skipped", [])
    browser = [r for r in skipped if "chromium" in str(r.longrepr).lower()]
    services = [r for r in skipped if r not in browser and "Redis" in str(r.longrepr)]
    if browser:
        terminalreporter.write_line(
            f"{len(browser)} browser tests skipped: Debian's Chromium is not installed. "
            "To run them: apt-get install chromium, then make test.",
            yellow=True,
        )
    if services:
        terminalreporter.write_line(
            f"{len(services)} tests skipped for want of PostgreSQL and Redis. To run them: "
            "DATABASE_URL=postgresql://... REDIS_URL=redis://... make test (or bash .ci/run).",
            yellow=True,
        )
