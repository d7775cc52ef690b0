"""An experiment's page in Chromium, on rows made in the database: its live region fetches
itself while the experiment runs (a score added shows without a reload, an opened output
stays open), stops once it ended, and axe finds nothing serious."""

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from agents import actions
from agents.models import Agent, Experiment, ExperimentStatus, JobStatus

from . import experiment_rows as rows
from .axe import assert_none_blocking, axe_source, check
from .browser import screenshot
from .cast import person

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

REPORT_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', e =>
  window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`));"""
LIVE_MS = 12_000  # a few of the region's polls


def logged_in_page(browser, base_url: str, username: str, violations: list[str]):
    """A page whose session is made here (the login form's hashing is slow), reporting any
    CSP violation; axe's script is added past the CSP."""
    client = Client()
    client.force_login(person(username))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.expose_binding("__cspViolation", lambda _source, line: violations.append(line))
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}])
    return context.new_page()


def test_the_live_region_shows_a_new_score_and_stops_when_the_experiment_ends(
    live_server, browser, request
):
    exact = rows.scorer("Exact", threshold=0.5)
    made = rows.experiment(
        "Reviewer v2 on outages",
        {exact: [1.0, None]},
        status=ExperimentStatus.RUNNING,
        results=["The cache key was reused.\n" * 20, "Rolled back the deploy."],
        # The second case's job still runs: a worker of another test's stack, sweeping this
        # database, would otherwise score it first (the Exact scorer gives it 0).
        job_statuses=[JobStatus.COMPLETED, JobStatus.WORKING],
    )
    violations: list[str] = []
    page = logged_in_page(browser, live_server.url, "bob", violations)
    page.goto(f"{live_server.url}/experiments/{made.pk}/")
    stats = page.locator("#scorer-1")
    expect(stats.locator(".mean")).to_have_text("1.000")
    expect(page.locator("#case-2 td.score")).to_have_text("–")
    page.evaluate("window.__notReloaded = true")
    output = page.locator(f"#case-output-{made.cases.get(position=1).pk}")
    output.locator("summary").click()
    expect(output).to_have_attribute("open", "")

    rows.add_score(made.cases.get(position=2), exact, 0.0)
    expect(page.locator("#case-2 td.score")).to_contain_text("0.00", timeout=LIVE_MS)
    expect(stats.locator(".mean")).to_have_text("0.500")
    expect(stats.locator(".pass-rate")).to_contain_text("50 %")
    assert page.evaluate("window.__notReloaded === true")  # swapped in place
    expect(output).to_have_attribute("open", "")  # the reader's open output stayed open
    screenshot(page, request, "experiment-running")

    Experiment.objects.filter(pk=made.pk).update(status=ExperimentStatus.COMPLETED)
    expect(page.locator("#experiment-status")).to_have_text("Completed", timeout=LIVE_MS)
    expect(page.locator("#experiment-live[hx-trigger]")).to_have_count(0)
    assert not page.get_by_role("button", name="Cancel experiment").count()

    found: dict = {}
    page.locator("main details").evaluate_all("all => all.forEach(d => d.open = true)")
    check(request, page, "experiment", axe_source(), found)
    assert_none_blocking(found)
    assert violations == []


def test_the_other_evaluation_pages_are_accessible(live_server, browser, request):
    """The list with its form, two experiments compared, the annotation queue, and a job's
    scores with the rating form: axe finds nothing serious, and nothing breaks the CSP."""
    reviewer = Agent.objects.create(name="Reviewer", slug="reviewer", specialties=["review"])
    actions.edit_agent(reviewer, {"system_prompt": "Be strict."})
    exact = rows.scorer("Exact")
    a = rows.experiment("Baseline", {exact: [0.4, 0.5]}, agent_versions={"reviewer": 1})
    b = rows.experiment(
        "Stricter", {exact: [0.6, 0.5]}, results=["output 1\nmore", "output 2"],
        agent_versions={"reviewer": 2},
    )  # fmt: skip
    rows.add_score_to_job(a.cases.get(position=1).job, "Judge", 0.9, source="judge")
    violations: list[str] = []
    page = logged_in_page(browser, live_server.url, "bob", violations)
    axe, found = axe_source(), {}
    for name, path, ready in (
        ("experiments", "/experiments/", "Start experiment"),
        ("compare", f"/experiments/{a.pk}/compare/{b.pk}/", None),
        ("annotate", f"/experiments/{a.pk}/annotate/", "Save and next"),
        ("job scores", f"/jobs/{a.cases.get(position=1).job_id}/", "Save rating"),
    ):
        page.goto(f"{live_server.url}{path}")
        if ready:
            expect(page.get_by_role("button", name=ready)).to_be_visible()
        check(request, page, name, axe, found)
    assert_none_blocking(found)
    assert violations == []
