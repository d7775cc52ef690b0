"""An operator, as a new user would: creates a dataset, adds a case by the form, imports a
JSONL file with one bad line (the line is named, nothing is imported) and exports the
dataset as JSONL; the dataset's page passes axe."""

import json

import pytest
from playwright.sync_api import expect

from agents.models import Case

from .axe import assert_none_blocking, axe_source, check
from .browser import user_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]


def test_an_operator_makes_fills_imports_and_exports_a_dataset_in_chromium(
    stack, seeded, browser, request
):
    url = stack.base_url
    bob = user_page(browser, url, "bob", accept_downloads=True, bypass_csp=True)  # for axe
    bob.goto(f"{url}/")
    bob.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    bob.get_by_label("Name").fill("Sea poems")
    bob.get_by_label("Description").fill("Haiku about the sea")
    bob.get_by_role("button", name="Create dataset").click()
    expect(bob.get_by_role("heading", name="Sea poems sea-poems")).to_be_visible()

    bob.get_by_label("Title").fill("Waves")
    bob.get_by_label("Input (as a job's description)").fill("A haiku about <waves>.")
    bob.get_by_label("Expected output").fill("Foam and salt")
    bob.get_by_label("Tags").fill("poem, sea")
    bob.get_by_role("button", name="Add case").click()
    expect(bob.locator("#cases")).to_contain_text("A haiku about <waves>.")

    lines = [json.dumps({"title": "Moon", "description": "About the moon"}), '{"title": "Bad"']
    bob.get_by_label("File").set_input_files(
        files=[
            {
                "name": "cases.jsonl",
                "mimeType": "application/jsonl",
                "buffer": "\n".join(lines).encode(),
            }
        ]
    )
    bob.get_by_role("button", name="Import").click()
    expect(bob.locator("#import-errors")).to_contain_text("Line 2: invalid JSON")
    expect(bob.get_by_role("alert").first).to_contain_text("Nothing was imported: 1 bad line.")
    expect(bob.locator("#cases tbody tr")).to_have_count(1)
    assert list(Case.objects.values_list("title", flat=True)) == ["Waves"]
    found: dict = {}
    check(request, bob, "dataset", axe_source(), found)

    with bob.expect_download() as download:
        bob.get_by_role("link", name="Export JSONL of Sea poems").click()
    assert download.value.suggested_filename == "sea-poems.jsonl"
    exported = [json.loads(line) for line in open(download.value.path()).read().splitlines()]
    assert exported == [
        {
            "title": "Waves",
            "description": "A haiku about <waves>.",
            "expected": "Foam and salt",
            "notes": "",
            "tags": ["poem", "sea"],
        }
    ]
    assert_none_blocking(found)
