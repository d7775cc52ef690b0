"""Failed logins are throttled per username and address, on the dashboard and in the admin."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import AsyncClient
from django.utils import timezone

from .cast import PASSWORD, person
from .stack import ROOT

pytestmark = pytest.mark.django_db

LOGIN_PAGES = ["/login/", "/admin/login/"]
LOCKED = "Too many failed logins; try again in 15 minutes."


@pytest.fixture(autouse=True)
def _cast() -> None:
    person("alice")
    person("bob")


def log_in(client, path: str, username: str = "alice", password: str = PASSWORD, **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def fail(client, path: str, times: int, username: str = "alice", **extra) -> None:
    for _ in range(times):
        response = log_in(client, path, username, "not-the-password", **extra)
        assert response.status_code == 200, response.status_code  # the form again


@pytest.mark.parametrize("path", LOGIN_PAGES)
def test_the_fifth_failure_locks_out_with_a_message(client, path):
    fail(client, path, 4)
    response = log_in(client, path, password="not-the-password")
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    # The right password does not get through the lock either.
    response = log_in(client, path)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lock_holds_on_both_login_pages(client):
    fail(client, "/login/", 5 - 1)
    assert log_in(client, "/admin/login/", password="wrong").status_code == 429
    assert log_in(client, "/login/").status_code == 429


def test_the_lock_is_per_username_and_address(client):
    fail(client, "/login/", 4)
    assert log_in(client, "/login/", password="wrong").status_code == 429
    # Another address with the same name, and another name from the same address, still log in.
    assert log_in(client, "/login/", REMOTE_ADDR="10.0.0.9").status_code == 302
    client.logout()
    assert log_in(client, "/login/", username="bob").status_code == 302


def test_the_lock_lifts_after_the_cool_off(client):
    from axes.models import AccessAttempt

    fail(client, "/login/", 4)
    assert log_in(client, "/login/", password="wrong").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert log_in(client, "/login/").status_code == 302


def test_a_success_forgets_earlier_failures(client):
    fail(client, "/login/", 4)
    assert log_in(client, "/login/").status_code == 302
    client.logout()
    fail(client, "/login/", 4)
    assert log_in(client, "/login/").status_code == 302


def test_the_message_counts_the_configured_minutes(client, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    fail(client, "/login/", 4)
    response = log_in(client, "/login/", password="wrong")
    assert "Too many failed logins; try again in 1 minute." in response.content.decode()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_lockout_says_so_under_asgi():
    """Daphne runs the middleware asynchronously: the same page, not axes' bare text."""
    client = AsyncClient()
    for _ in range(4):
        response = await log_in(client, "/login/", password="wrong")
        assert response.status_code == 200
    response = await log_in(client, "/login/", password="wrong")
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "<h1>" in response.content.decode()


def settings_in(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds())"
    )
    full = {**os.environ, "BATON_VAR_DIR": str(tmp_path), **env}
    full.pop("DATABASE_URL", None)
    full["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True
    )


def test_the_limits_come_from_the_environment(tmp_path):
    result = settings_in({}, tmp_path)
    assert result.stdout.split() == ["5", "900.0"], result.stderr
    result = settings_in({"AXES_FAILURE_LIMIT": "3", "AXES_COOLOFF_MINUTES": "60"}, tmp_path)
    assert result.stdout.split() == ["3", "3600.0"], result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("AXES_FAILURE_LIMIT", "five"), ("AXES_FAILURE_LIMIT", "0"), ("AXES_COOLOFF_MINUTES", "0")],
)
def test_a_bad_limit_names_its_variable(name, value, tmp_path):
    result = settings_in({name: value}, tmp_path)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} must be" in result.stderr
