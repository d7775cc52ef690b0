"""Every page carries a Content Security Policy it works under; behind TLS the deploy check is
clean, and plain HTTP stays the default for `make dev`."""

import html
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from agents.models import Job, SharedState

from .stack import ROOT

pytestmark = pytest.mark.django_db

TEMPLATES = sorted((Path(ROOT) / "templates").rglob("*.html"))
TAG = re.compile(r"<([a-zA-Z][\w-]*)\b([^>]*)>", re.S)
EVENT_HANDLER = re.compile(r"(?:^|\s)on[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"(?:^|\s)style\s*=", re.I)


@pytest.fixture
def job_in_review() -> Job:
    """A job whose page draws everything: plan review forms, delete and cancel buttons."""
    job = Job.objects.create(
        title="Under review",
        description="d" * 20,
        status="waiting",
        review_plan=True,
        planned_at=timezone.now(),
    )
    SharedState.objects.create(job=job)
    job.subtasks.create(key="research", type="research", status="waiting")
    return job


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def tags(html: str) -> list[tuple[str, str]]:
    return [(name.lower(), attributes) for name, attributes in TAG.findall(html)]


def assert_no_inline_code(html: str, where: str, nonce: str | None = None) -> None:
    for name, attributes in tags(html):
        assert not EVENT_HANDLER.search(attributes), f"{where}: inline handler in <{name}>"
        assert not STYLE_ATTRIBUTE.search(attributes), f"{where}: style attribute in <{name}>"
        assert "hx-on" not in attributes, f"{where}: hx-on needs eval, in <{name}>"
        assert "javascript:" not in attributes.lower(), f"{where}: javascript: URL in <{name}>"
        if name in ("script", "style"):
            has_nonce = re.search(r"\snonce=", attributes)
            if name == "script" and re.search(r"\ssrc=", attributes):
                continue
            assert has_nonce, f"{where}: inline <{name}> without a nonce"
            if nonce is not None:
                assert f'nonce="{nonce}"' in attributes, f"{where}: <{name}> with a stale nonce"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_holds_inline_code(template):
    assert_no_inline_code(template.read_text(), str(template.relative_to(ROOT)))


def test_the_policy_is_strict(client, superuser):
    directives = policy(client.get("/"))
    assert directives["default-src"] == ["'self'"]
    for name in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in directives.get(name, []), name
        assert "'unsafe-eval'" not in directives.get(name, []), name
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    # Nothing from elsewhere: the static files are Baton's own.
    assert not [v for values in directives.values() for v in values if "://" in v or "*" in v]


def test_every_page_carries_the_policy_and_no_inline_code(client, superuser, job_in_review):
    for path in ("/", f"/jobs/{job_in_review.pk}/", "/agents/", "/admin/", "/admin/agents/job/"):
        response = client.get(path)
        assert response.status_code == 200, path
        directives = policy(response)
        nonce = next(
            (v[len("'nonce-") : -1] for v in directives["script-src"] if v.startswith("'nonce-")),
            None,
        )
        assert_no_inline_code(response.content.decode(), path, nonce)
    page = client.get(f"/jobs/{job_in_review.pk}/").content.decode()
    assert "Delete research" in page and "Cancel job" in page  # the confirmed forms are drawn
    assert 'data-confirm="Cancel this job?' in page


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_the_login_pages_carry_the_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert policy(response)["script-src"][0] == "'self'"
    assert_no_inline_code(response.content.decode(), path)


def test_htmx_is_configured_to_need_no_inline_style_or_eval(client, superuser):
    page = client.get("/").content.decode()
    meta = re.search(r"""<meta name="htmx-config" content=(["'])(.*?)\1""", page)
    assert meta, "no htmx-config meta"
    config = json.loads(html.unescape(meta.group(2)))
    assert config["includeIndicatorStyles"] is False  # it injects an inline <style>
    assert config["allowEval"] is False  # hx-on, event filters and js: values need eval


def test_the_error_pages_carry_the_policy(client, superuser):
    response = client.get("/jobs/999999/")
    assert response.status_code == 404
    assert policy(response)
    assert_no_inline_code(response.content.decode(), "404")


def run_in(env: dict[str, str], tmp_path, *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    full.update(BATON_VAR_DIR=str(tmp_path), **env)
    for name in ("DEBUG", "HTTPS", "SECRET_KEY", "ALLOWED_HOSTS"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run(args, cwd=ROOT, env=full, capture_output=True, text=True)


PRODUCTION = {
    "DEBUG": "false",
    "HTTPS": "true",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "baton.example.com",
}


def test_the_deploy_check_is_clean_in_production(tmp_path):
    result = run_in(
        PRODUCTION, tmp_path, sys.executable, "manage.py", "check", "--deploy", "--fail-level",
        "WARNING",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified some issues" not in output
    assert "System check identified no issues" in output


SHOW = (
    "import django; django.setup(); from django.conf import settings as s;"
    "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
    " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
)


def test_https_turns_on_redirect_hsts_and_secure_cookies(tmp_path):
    env = {"HTTPS": "true", "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings"}
    result = run_in(env, tmp_path, sys.executable, "-c", SHOW)
    assert result.stdout.split() == ["True", "31536000", "True", "True", "True"], result.stderr


def test_plain_http_is_the_default(tmp_path, client):
    env = {"DJANGO_SETTINGS_MODULE": "orchestrator_site.settings"}
    result = run_in(env, tmp_path, sys.executable, "-c", SHOW)
    assert result.stdout.split() == ["False", "0", "False", "False", "False"], result.stderr
    response = client.get("/login/")  # `make dev` at http://127.0.0.1:8000: no redirect
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
