"""The API's documentation page: Swagger UI from static files, under the site's CSP."""

import re

import pytest
from playwright.sync_api import expect

from agents.models import Job, JobStatus

from .api_support import make_job
from .browser import screenshot
from .cast import PASSWORD, person


@pytest.mark.django_db
def test_the_docs_page_loads_swagger_ui_from_static_files_only(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all(body.strip() == "" for _, body in scripts)  # nothing inline
    sources = [re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _ in scripts]
    assert sources == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/api/docs.js",
    ]
    assert "<style" not in page and "//" not in "".join(s.split(":", 1)[0] for s in sources)
    assert 'data-schema="/api/v1/openapi.json"' in page
    for source in sources:
        assert client.get(source).status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert "img-src 'self' data:" in csp


def operations() -> int:
    """How many operations the OpenAPI document lists: Swagger UI shows one block each."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    methods = {"get", "post", "put", "patch", "delete"}
    return sum(1 for item in paths.values() for method in item if method in methods)


REPORT_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', e =>
  window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`));"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_and_tries_calls_with_the_session(
    live_server, browser, pages_closed, request
):
    """In Chromium, under the site's CSP: every operation listed, and "Try it out" works with
    the logged-in session, a POST included (it carries the CSRF token)."""
    person("bob")
    job = make_job(JobStatus.WORKING)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    violations: list[str] = []
    context.expose_binding("__cspViolation", lambda _source, line: violations.append(line))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="API docs").click()

    expect(page.locator(".opblock")).to_have_count(operations(), timeout=15_000)
    screenshot(page, request, "api-docs")
    cancel = page.locator(".opblock-post", has_text="/api/v1/jobs/{job_id}/cancel")
    cancel.locator(".opblock-summary").click()
    cancel.get_by_role("button", name="Try it out").click()
    cancel.get_by_placeholder("job_id").fill(str(job.pk))
    cancel.get_by_role("button", name="Execute").click()
    expect(cancel.locator(".live-responses-table tbody .response-col_status")).to_have_text(
        "200", timeout=10_000
    )
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    page.wait_for_timeout(300)  # late reports
    assert violations == []
