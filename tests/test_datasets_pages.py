"""The dataset pages: a viewer reads them, an operator keeps them (create, cases by form and
by file, export, edit, delete), someone with no role sees none; and jobs added as cases from
a job's page and from a board filter, only completed ones, each once a dataset."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents import datasets
from agents.models import AuditEntry, Case, Dataset, Job, JobStatus

from .api_support import make_job
from .conftest import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.objects.create(name="Haiku", slug="haiku", description="Short poems")


def test_a_viewer_reads_the_list_and_a_dataset_but_has_no_controls(client, viewer, dataset):
    Case.objects.create(dataset=dataset, title="Sea", description="About the sea", tags=["p"])
    html = client.get("/datasets/").content.decode()
    assert 'href="/datasets/haiku/"' in html and "New dataset" not in html
    response = client.get("/datasets/haiku/")
    html = response.content.decode()
    assert response.status_code == 200 and "Sea" in html and "About the sea" in html
    assert 'href="/datasets/haiku/export.jsonl"' in html
    assert "Add a case" not in html and "Import cases" not in html and "/edit/" not in html


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/datasets/new/", {"name": "X"}),
        ("/datasets/haiku/cases/add/", {"title": "t", "description": "d"}),
        ("/datasets/haiku/delete/", {}),
        ("/datasets/from-board/", {"new_name": "Y"}),
    ],
)
def test_a_viewer_cannot_write(client, viewer, dataset, url, data):
    assert client.post(url, data).status_code == 403
    assert client.get("/datasets/haiku/edit/").status_code == 403
    assert list(Dataset.objects.values_list("name", flat=True)) == ["Haiku"]
    assert not Case.objects.exists()


def test_someone_with_no_role_reads_nothing(client, dataset):
    logged_in(client, "eve")
    for url in ("/datasets/", "/datasets/haiku/", "/datasets/haiku/export.jsonl"):
        assert client.get(url).status_code == 403


def test_an_operator_creates_a_dataset_and_adds_a_case_by_form(client, operator):
    response = client.post("/datasets/new/", {"name": "Sea poems", "description": ""})
    assert response.status_code == 302 and response["Location"] == "/datasets/sea-poems/"
    response = client.post(
        "/datasets/sea-poems/cases/add/",
        {"title": "Waves", "description": "A haiku on waves", "tags": "poem, sea, poem"},
    )
    assert response.status_code == 302
    case = Case.objects.get()
    assert (case.dataset.slug, case.tags) == ("sea-poems", ["poem", "sea"])
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "actor__username")) == [
        ("create_dataset", "bob"),
        ("add_case", "bob"),
    ]
    html = client.get("/datasets/sea-poems/").content.decode()
    assert "#" + str(case.pk) + " Waves" in html and "poem, sea" in html


def test_a_second_dataset_of_a_taken_name_is_refused(client, operator, dataset):
    response = client.post("/datasets/new/", {"name": "Haiku"})
    assert response.status_code == 400 and Dataset.objects.count() == 1


def test_a_reserved_path_is_never_a_slug(client, operator):
    client.post("/datasets/new/", {"name": "New"})
    assert Dataset.objects.get().slug == "new-2"


def upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text)


def test_an_import_with_a_bad_line_lists_it_and_imports_nothing(client, operator, dataset):
    lines = [json.dumps({"title": "A", "description": "a"}), "{oops", json.dumps({"title": "B"})]
    response = client.post("/datasets/haiku/import/", {"file": upload("c.jsonl", "\n".join(lines))})
    assert response.status_code == 422
    html = response.content.decode()
    assert "Line 2: invalid JSON" in html and "Line 3: missing description" in html
    assert "Nothing was imported: 2 bad lines." in html
    assert not Case.objects.exists()


def test_a_good_csv_file_is_imported(client, operator, dataset):
    text = "title,description,tags\nA,first,x;y\nB,second,\n"
    response = client.post("/datasets/haiku/import/", {"file": upload("cases.csv", text)})
    assert response.status_code == 302
    assert list(Case.objects.values_list("title", "tags")) == [("A", ["x", "y"]), ("B", [])]
    assert AuditEntry.objects.filter(action="import_cases", actor__username="bob").exists()


def test_a_file_of_no_known_format_asks_for_one(client, operator, dataset):
    response = client.post("/datasets/haiku/import/", {"file": upload("cases.txt", "x")})
    assert response.status_code == 400 and "Choose the format" in response.content.decode()


def test_the_export_is_an_attachment_of_jsonl_lines(client, viewer, dataset):
    Case.objects.create(dataset=dataset, title="Sea", description="d", expected="e", tags=["p"])
    response = client.get("/datasets/haiku/export.jsonl")
    assert response["Content-Disposition"] == 'attachment; filename="haiku.jsonl"'
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"title": "Sea", "description": "d", "expected": "e", "notes": "", "tags": ["p"]}
    ]


def test_an_operator_edits_and_deletes_a_case_and_the_dataset(client, operator, dataset):
    case = Case.objects.create(dataset=dataset, title="Sea", description="d")
    url = f"/datasets/haiku/cases/{case.pk}/"
    assert client.get(url + "edit/").status_code == 200
    response = client.post(url + "edit/", {"title": "Ocean", "description": "d", "tags": ""})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.title == "Ocean"
    client.post(url + "delete/")
    assert not Case.objects.exists()
    response = client.post("/datasets/haiku/edit/", {"name": "Poems", "description": ""})
    dataset.refresh_from_db()
    assert (dataset.name, dataset.slug) == ("Poems", "haiku")  # its address stays
    client.post("/datasets/haiku/delete/")
    assert not Dataset.objects.exists()
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["edit_case", "delete_case", "edit_dataset", "delete_dataset"]


def completed(title: str = "Haiku", **fields) -> Job:
    return make_job(JobStatus.COMPLETED, title=title, result="Waves break.", **fields)


def test_the_job_page_offers_add_to_dataset_to_an_operator_only(client, dataset):
    job = completed()
    logged_in(client, "carol")
    assert "Add to dataset" not in client.get(f"/jobs/{job.pk}/").content.decode()
    logged_in(client, "bob")
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Add to dataset" in html and f'action="/datasets/from-job/{job.pk}/"' in html
    assert '<option value="haiku">Haiku</option>' in html


def test_a_completed_job_is_added_from_its_page_once(client, operator, dataset):
    job = completed()
    response = client.post(f"/datasets/from-job/{job.pk}/", {"dataset": "haiku"}, follow=True)
    assert f"Job #{job.pk} added to Haiku." in response.content.decode()
    case = Case.objects.get()
    assert (case.title, case.description, case.expected) == (
        "Haiku",
        "About the sea, in English.",
        "Waves break.",
    )
    assert case.source_job == job
    response = client.post(f"/datasets/from-job/{job.pk}/", {"dataset": "haiku"}, follow=True)
    assert "is in Haiku already" in response.content.decode()
    assert Case.objects.count() == 1
    entry = AuditEntry.objects.get(action="add_jobs_to_dataset")
    assert entry.job == job and entry.actor.username == "bob"


def test_a_job_that_has_not_completed_is_not_added(client, operator, dataset):
    job = make_job(JobStatus.WORKING)
    response = client.post(f"/datasets/from-job/{job.pk}/", {"dataset": "haiku"}, follow=True)
    assert "only a completed job is added" in response.content.decode()
    assert not Case.objects.exists()


def test_a_job_is_added_to_a_new_dataset_by_name(client, operator):
    job = completed()
    client.post(f"/datasets/from-job/{job.pk}/", {"new_name": "Fresh"})
    assert Case.objects.get().dataset.name == "Fresh"


def test_a_viewer_cannot_add_a_job(client, viewer, dataset):
    job = completed()
    assert client.post(f"/datasets/from-job/{job.pk}/", {"dataset": "haiku"}).status_code == 403
    assert not Case.objects.exists()


def test_the_board_adds_the_completed_jobs_matching_its_filter(client, operator, dataset):
    sea = [completed("Sea one"), completed("Sea two")]
    completed("Mountain", description="About hills.")
    make_job(JobStatus.FAILED, title="Sea failed")  # matches, but has not completed
    html = client.get("/?q=Sea").content.decode()
    assert "Add these jobs to a dataset" in html
    assert '<input type="hidden" name="q" value="Sea">' in html
    response = client.post("/datasets/from-board/", {"q": "Sea", "dataset": "haiku"}, follow=True)
    assert response.redirect_chain[-1][0] == "/?q=Sea"
    assert "2 added to Haiku." in response.content.decode()
    assert set(Case.objects.values_list("source_job", flat=True)) == {job.pk for job in sea}
    response = client.post("/datasets/from-board/", {"q": "Sea", "dataset": "haiku"}, follow=True)
    assert "Nothing added to Haiku: 2 skipped" in response.content.decode()
    assert Case.objects.count() == 2


def test_the_board_form_is_for_those_who_may_add_cases(client, viewer):
    assert "Add these jobs to a dataset" not in client.get("/").content.decode()


def test_the_board_takes_at_most_the_newest_jobs_max(client, operator, dataset, monkeypatch):
    monkeypatch.setattr(datasets, "JOBS_MAX", 1)
    completed("Older")
    newer = completed("Newer")
    response = client.post("/datasets/from-board/", {"dataset": "haiku"}, follow=True)
    assert "Only the newest 1 matching jobs were taken" in response.content.decode()
    assert list(Case.objects.values_list("source_job", flat=True)) == [newer.pk]
