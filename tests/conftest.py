import os
import time

import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import CommandError
from django.test import TransactionTestCase

from agents import team
from agents.models import Job, Subtask
from agents.roles import ensure_roles

from .inprocess import capture_messages
from .stack import start_stack
from .webhook_receiver import capture_sent_tasks

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
PASSWORD = "correct-horse-battery"
USERS = {"alice": None, "bob": "Operators", "carol": "Viewers", "dave": "Agent managers"}


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


def member_of(role: str | None, username: str) -> User:
    """A user in one of the roles (None: in no group at all)."""
    ensure_roles(Group, Permission)
    user = User.objects.create_user(username, password=f"pw-{username}-123")
    user.groups.set(Group.objects.filter(name=role))
    return user


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, tuple]]:
    """The steps' Celery messages, (short name, args), kept instead of sent: `inprocess.deliver`
    runs them."""
    return capture_messages(monkeypatch)


@pytest.fixture
def sent_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """Every Celery message by its full task name (webhooks' `deliver` too), kept instead of
    sent."""
    return capture_sent_tasks(monkeypatch)


@pytest.fixture
def viewer(client) -> User:
    """carol, a Viewer, logged in: she may read every page."""
    user = member_of("Viewers", "carol")
    client.force_login(user)
    return user


@pytest.fixture
def seeded(django_db_blocker):
    """The default team, the roles and four users, made anew: transactional tests flush.

    alice is a superuser, bob an operator, carol a viewer, dave an agent manager.
    """
    with django_db_blocker.unblock():
        team.seed()
        ensure_roles(Group, Permission)
        users = {}
        for name, role in USERS.items():
            superuser = role is None
            user, _ = User.objects.get_or_create(
                username=name, defaults={"is_staff": superuser, "is_superuser": superuser}
            )
            user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
            user.save()
            user.groups.set(Group.objects.filter(name=role))
            users[name] = user
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
