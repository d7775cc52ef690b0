"""A dataset's cases from a file: every bad line reported by number and nothing stored,
bounded in size and count, NUL stripped, a byte-order mark tolerated; exported as JSONL and
imported again into a new dataset, the same cases."""

import json

import pytest
from django.core.exceptions import PermissionDenied

from agents import datasets
from agents.actions import datasets as actions
from agents.models import AuditEntry, Case, Dataset

from .cast import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.objects.create(name="Haiku", slug="haiku")


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


GOOD = {"title": "Sea", "description": "A haiku about the sea.", "tags": ["poem", "sea"]}


def refused(dataset: Dataset, data: bytes, fmt: str) -> list[tuple[int, str]]:
    audited = AuditEntry.objects.filter(action="import_cases").count()
    with pytest.raises(datasets.ImportRefused) as caught:
        actions.import_cases(dataset, data, fmt, user=person("bob"))
    assert not Case.objects.exists()
    assert AuditEntry.objects.filter(action="import_cases").count() == audited
    return caught.value.errors


def test_a_good_jsonl_file_is_imported_whole_and_audited(dataset):
    data = jsonl(GOOD, "", {**GOOD, "title": "Moon", "expected": "Pale light", "notes": "short"})
    cases = actions.import_cases(dataset, data, "jsonl", user=person("bob"))
    assert [c.title for c in Case.objects.all()] == ["Sea", "Moon"] == [c.title for c in cases]
    moon = Case.objects.get(title="Moon")
    assert (moon.expected, moon.notes, moon.tags) == ("Pale light", "short", ["poem", "sea"])
    entry = AuditEntry.objects.get(action="import_cases")
    assert entry.actor.username == "bob" and "haiku: 2 cases" in entry.detail


def test_every_bad_jsonl_line_is_reported_by_number_and_nothing_is_stored(dataset):
    data = jsonl(
        GOOD,  # 1
        "{not json",  # 2
        "[1, 2]",  # 3
        {"title": "No input"},  # 4
        {**GOOD, "title": "x" * 201},  # 5
        {**GOOD, "tags": "poem"},  # 6
        {**GOOD, "tags": ["x" * 51]},  # 7
        {**GOOD, "expect": "typo"},  # 8
        {**GOOD, "title": 7},  # 9
        GOOD,  # 10
    )
    errors = dict(refused(dataset, data, "jsonl"))
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert errors[2].startswith("invalid JSON")
    assert errors[3] == "not a JSON object"
    assert errors[4] == "missing description"
    assert "title is too long" in errors[5]
    assert "tags must be a list of strings" in errors[6]
    assert "at most 50 characters" in errors[7]
    assert errors[8] == "unknown field: expect"
    assert errors[9] == "title must be text"


def test_every_bad_csv_row_is_reported_by_its_line_and_nothing_is_stored(dataset):
    data = (
        b"title,description,expected,notes,tags\r\n"
        b"Sea,A haiku about the sea.,,,poem;sea\r\n"  # 2
        b",No title here,,,\r\n"  # 3
        b'Multi,"two\nlines",,,\r\n'  # 4-5
        b"Short,row\r\n"  # 6
        b"Moon,,,,\r\n"  # 7
    )
    errors = dict(refused(dataset, data, "csv"))
    assert errors == {
        3: "missing title",
        6: "2 columns where the header has 5",
        7: "missing description",
    }


def test_a_csv_file_with_a_byte_order_mark_is_imported(dataset):
    data = "\ufefftitle,description,tags\nSea,A haiku about the sea.,poem; sea;poem\n"
    actions.import_cases(dataset, data.encode(), "csv")
    case = Case.objects.get()
    assert (case.title, case.tags, case.expected) == ("Sea", ["poem", "sea"], "")


def test_a_csv_header_without_title_and_description_is_refused(dataset):
    assert refused(dataset, b"name,text\na,b\n", "csv") == [
        (1, "the header row must name at least title and description")
    ]


def test_lines_that_are_not_utf8_are_reported(dataset):
    data = jsonl(GOOD) + b'\n{"title": "caf\xe9", "description": "x"}\n' + jsonl(GOOD)
    errors = refused(dataset, data, "jsonl")
    assert [line for line, _ in errors] == [2] and "not UTF-8" in errors[0][1]


def test_nul_is_stripped(dataset):
    data = jsonl({"title": "Se\u0000a", "description": "A\u0000 haiku", "tags": ["p\u0000"]})
    actions.import_cases(dataset, data, "jsonl")
    case = Case.objects.get()
    assert (case.title, case.description, case.tags) == ("Sea", "A haiku", ["p"])


def test_the_file_size_is_bounded(dataset, monkeypatch):
    monkeypatch.setattr(datasets, "IMPORT_MAX_BYTES", 100)
    errors = refused(dataset, jsonl(GOOD, GOOD, GOOD), "jsonl")
    assert errors[0][0] == 0 and "at most 100 are taken" in errors[0][1]


def test_the_case_count_is_bounded(dataset, monkeypatch):
    monkeypatch.setattr(datasets, "IMPORT_MAX_CASES", 3)
    actions.import_cases(dataset, jsonl(GOOD, GOOD, GOOD), "jsonl")
    assert Case.objects.count() == 3
    Case.objects.all().delete()
    errors = refused(dataset, jsonl(GOOD, GOOD, GOOD, GOOD), "jsonl")
    assert errors[0][0] == 0 and "more than 3 cases" in errors[0][1]


def test_what_a_dataset_holds_is_bounded(dataset, monkeypatch):
    monkeypatch.setattr(datasets, "DATASET_MAX_CASES", 2)
    actions.import_cases(dataset, jsonl(GOOD), "jsonl")
    with pytest.raises(datasets.TooManyCases):
        actions.import_cases(dataset, jsonl(GOOD, GOOD), "jsonl")
    assert Case.objects.count() == 1


def test_an_empty_file_imports_nothing(dataset):
    assert refused(dataset, b"\n\n", "jsonl") == [(0, "the file holds no cases")]


def test_the_listed_errors_are_bounded_and_all_counted(dataset):
    with pytest.raises(datasets.ImportRefused) as caught:
        datasets.import_cases(dataset, b"[]\n" * 150, "jsonl")
    assert len(caught.value.errors) == datasets.ERRORS_LISTED
    assert caught.value.bad_lines == 150


def test_an_export_imported_into_a_new_dataset_gives_the_same_cases(dataset):
    rows = [
        GOOD,
        {"title": "Ünïcode ✓", "description": 'Quotes " and\nnewlines', "expected": "E"},
        {"title": "Notes", "description": "d", "notes": "n", "tags": []},
    ]
    actions.import_cases(dataset, jsonl(*rows), "jsonl")
    exported = "".join(datasets.export_jsonl(dataset)).encode()
    copy = Dataset.objects.create(name="Copy", slug="copy")
    actions.import_cases(copy, exported, "jsonl")
    fields = ("title", "description", "expected", "notes", "tags")
    original = list(dataset.cases.order_by("id").values_list(*fields))
    assert list(copy.cases.order_by("id").values_list(*fields)) == original
    assert len(original) == 3


def test_a_csv_header_naming_unknown_or_repeated_columns_is_reported_once(dataset):
    data = b"title,description,expect,title\nA,a,x,A\nB,b,y,B\n"
    assert refused(dataset, data, "csv") == [(1, "unknown column: expect; repeated column: title")]


def test_the_actions_refuse_a_user_whose_roles_do_not_allow_the_write(dataset):
    carol = person("carol")
    with pytest.raises(PermissionDenied):
        actions.create_dataset({"name": "X", "description": ""}, user=carol)
    with pytest.raises(PermissionDenied):
        actions.import_cases(dataset, jsonl(GOOD), "jsonl", user=carol)
    with pytest.raises(PermissionDenied):
        actions.delete_dataset(dataset, user=carol)
    assert Dataset.objects.count() == 1 and not Case.objects.exists()
    assert not AuditEntry.objects.exists()
