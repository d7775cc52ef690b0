"""An agent manager, as a new user would: edits the researcher's prompt with a note (v1 to
v2), compares the two versions, restores v1 (v3); the versions page passes axe."""

import pytest
from playwright.sync_api import expect

from .axe import assert_none_blocking, axe_source, check
from .browser import user_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]


def test_a_manager_edits_compares_and_restores_in_chromium(stack, seeded, browser, request):
    url = stack.base_url
    dave = user_page(browser, url, "dave", bypass_csp=True)
    dave.goto(f"{url}/agents/")
    dave.get_by_role("link", name="v1 of Researcher: its versions").click()
    expect(dave.get_by_role("heading", name="Researcher researcher: versions")).to_be_visible()
    dave.goto(f"{url}/agents/researcher/edit/")
    dave.get_by_label("System prompt").fill("Find sources.\nQuote them <exactly>.")
    dave.get_by_label("Note for the new version").fill("Quote sources")
    dave.get_by_role("button", name="Save agent").click()
    dave.get_by_role("link", name="v2 of Researcher: its versions").click()
    expect(dave.locator("#version-2")).to_contain_text("Quote sources")
    dave.get_by_role("button", name="Compare").click()  # v1 against v2, as drawn
    expect(dave.locator("#diff tr.added").last).to_contain_text("Quote them <exactly>.")
    found: dict = {}
    check(request, dave, "agent versions", axe_source(), found)
    dave.on("dialog", lambda dialog: dialog.accept())
    dave.get_by_role("button", name="Restore v1 of Researcher").click()
    expect(dave.get_by_role("alert")).to_contain_text("Restored v1 of Researcher as its new v3.")
    expect(dave.locator("#version-3")).to_contain_text("current")
    assert_none_blocking(found)
