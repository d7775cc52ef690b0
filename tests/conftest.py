import os

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission, User

from agents import team

from .stack import start_stack

IN_CI = os.environ.get("CI") == "true"
PASSWORD = "correct-horse-battery"


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
def seeded(django_db_blocker):
    """The default team and three users, made anew: transactional tests flush tables.

    alice is a superuser, bob an operator (submit, cancel, retry), carol a viewer.
    """
    with django_db_blocker.unblock():
        team.seed()
        users = {}
        for name, superuser in (("alice", True), ("bob", False), ("carol", False)):
            user, _ = User.objects.get_or_create(
                username=name, defaults={"is_staff": superuser, "is_superuser": superuser}
            )
            user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
            user.save()
            users[name] = user
        users["bob"].user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="agents", codename__in=["add_job", "change_job"]
            )
        )
    return users
