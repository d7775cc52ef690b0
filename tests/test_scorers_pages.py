"""The scorer pages: everyone with a role reads them; Operators create and edit scorers, each
kind's settings checked (a bad pattern, schema or bounds is a form error, not a 500)."""

import pytest

from agents.models import AuditEntry, Scorer

pytestmark = pytest.mark.django_db

LIST = "/scorers/"
NEW = "/scorers/new/"
BASE = {"threshold": "0.5", "sample_rate": "0", "enabled": "on", "online_type": ""}


def post_new(client, **fields):
    return client.post(NEW, {**BASE, **fields})


def make(kind="length", config=None, name="Not empty", slug="not-empty") -> Scorer:
    return Scorer.objects.create(name=name, slug=slug, kind=kind, config=config or {"min": 1})


def test_a_viewer_reads_the_list_without_the_form(client, viewer):
    make()
    response = client.get(LIST)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Not empty" in html and "1 to ∞ characters" in html
    assert "New scorer" not in html
    assert "/scorers/not-empty/edit/" not in html


def test_a_viewer_cannot_create_or_edit_a_scorer(client, viewer):
    make()
    assert post_new(client, name="X", kind="length", min_length="1").status_code == 403
    assert client.get("/scorers/not-empty/edit/").status_code == 403
    assert Scorer.objects.count() == 1


def test_someone_with_no_role_is_told_whom_to_ask(client):
    from tests.conftest import logged_in

    logged_in(client, "eve")
    assert client.get(LIST).status_code == 403


def test_the_list_needs_a_login(client):
    response = client.get(LIST)
    assert response.status_code == 302 and "login" in response["Location"]


def test_an_operator_creates_a_regex_scorer(client, operator):
    response = post_new(client, name="Has an order number", kind="regex", pattern=r"#\d{4}\b")
    assert response.status_code == 302
    scorer = Scorer.objects.get()
    assert scorer.slug == "has-an-order-number"
    assert scorer.config == {"pattern": r"#\d{4}\b"}
    assert scorer.created_by == operator
    entry = AuditEntry.objects.get(action="create_scorer")
    assert entry.actor == operator and "has-an-order-number" in entry.detail
    assert "Has an order number" in client.get(LIST).content.decode()


def test_an_operator_creates_a_judge_and_a_json_scorer(client, operator):
    post_new(client, name="Judge", kind="judge", rubric="Is it polite?", judge_model="m-1")
    post_new(
        client,
        name="Shape",
        kind="json_schema",
        schema='{"type": "object", "required": ["id"]}',
        threshold="1",
    )
    judge, shape = Scorer.objects.order_by("name")
    assert judge.config == {"rubric": "Is it polite?", "model": "m-1"}
    assert shape.config == {"schema": {"type": "object", "required": ["id"]}}
    assert shape.threshold == 1.0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"kind": "regex", "pattern": "(unclosed"}, "Not a valid regular expression"),
        ({"kind": "regex", "pattern": "(a+)+$"}, "exponential time"),
        ({"kind": "regex", "pattern": ""}, "Give a pattern"),
        ({"kind": "json_schema", "schema": '{"type": "nonsense"}'}, "Not a valid JSON schema"),
        ({"kind": "json_schema", "schema": "{not json"}, "Enter a valid JSON"),
        ({"kind": "json_schema", "schema": '{"a": "\\u0000"}'}, "NUL"),
        ({"kind": "length", "min_length": "10", "max_length": "5"}, "larger than the maximum"),
        ({"kind": "length"}, "Give a minimum, a maximum or both"),
        ({"kind": "contains", "sample_rate": "0.5"}, "Name the type of live work"),
        ({"kind": "contains", "threshold": "1.5"}, "less than or equal to 1"),
        ({"kind": "nope"}, "Select a valid choice"),
    ],
)
def test_bad_settings_are_form_errors(client, operator, fields, error):
    response = post_new(client, name="Bad", **fields)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Scorer.objects.exists()


def test_a_name_is_used_once(client, operator):
    make()
    response = post_new(client, name="Not empty", kind="length", min_length="1")
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_an_operator_edits_a_scorer(client, operator):
    scorer = make()
    page = client.get(f"/scorers/{scorer.slug}/edit/")
    assert page.status_code == 200
    assert 'name="min_length" value="1"' in page.content.decode()

    response = client.post(
        f"/scorers/{scorer.slug}/edit/",
        {**BASE, "name": "Short enough", "kind": "length", "max_length": "100", "threshold": "1"},
    )
    assert response.status_code == 302
    scorer.refresh_from_db()
    assert (scorer.name, scorer.slug) == ("Short enough", "not-empty")  # the slug stays
    assert scorer.config == {"min": None, "max": 100}
    assert scorer.threshold == 1.0
    entry = AuditEntry.objects.get(action="edit_scorer")
    assert entry.actor == operator and "config" in entry.detail and "threshold" in entry.detail


def test_an_edit_with_bad_settings_changes_nothing(client, operator):
    scorer = make()
    response = client.post(
        f"/scorers/{scorer.slug}/edit/",
        {**BASE, "name": "Not empty", "kind": "length", "min_length": "9", "max_length": "2"},
    )
    assert response.status_code == 400
    scorer.refresh_from_db()
    assert scorer.config == {"min": 1}
    assert not AuditEntry.objects.exists()


def test_names_and_settings_are_escaped(client, operator):
    make(kind="contains", config={"text": "<b>bold</b>"}, name="<script>alert(1)</script>")
    html = client.get(LIST).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_an_unknown_scorer_is_a_404(client, operator):
    assert client.get("/scorers/nope/edit/").status_code == 404


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("pages_closed")
def test_in_the_browser_an_operator_makes_and_edits_a_scorer(stack, seeded, browser, request):
    from playwright.sync_api import expect

    from .axe import assert_none_blocking, axe_source, check
    from .browser import user_page

    axe, found = axe_source(), {}
    bob = user_page(browser, stack.base_url, "bob", bypass_csp=True)
    bob.goto(f"{stack.base_url}/scorers/")
    expect(bob.get_by_role("heading", name="Scorers", exact=True)).to_be_visible()
    check(request, bob, "scorers", axe, found)

    bob.get_by_label("Name").fill("Short answer")
    bob.get_by_label("Kind").select_option("length")
    bob.get_by_label("Minimum length").fill("20")
    bob.get_by_label("Maximum length").fill("10")
    bob.get_by_role("button", name="Create scorer").click()
    expect(bob.get_by_text("The minimum is larger than the maximum.")).to_be_visible()
    check(request, bob, "scorers (form errors)", axe, found)

    bob.get_by_label("Minimum length").fill("1")
    bob.get_by_role("button", name="Create scorer").click()
    row = bob.locator("#scorer-short-answer")
    expect(row).to_contain_text("1 to 10 characters")

    row.get_by_role("link", name="Edit Short answer").click()
    check(request, bob, "scorer edit", axe, found)
    bob.get_by_label("Threshold").fill("0.9")
    bob.get_by_role("button", name="Save scorer").click()
    expect(bob.locator("#scorer-short-answer")).to_contain_text("0.90")
    assert_none_blocking(found)
