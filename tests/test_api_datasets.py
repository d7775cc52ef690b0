"""Datasets through the API: readers list and read them and export their cases; operators
create, edit and delete datasets and cases, import files (a 422 lists each bad line and
nothing is stored) and add completed jobs by id or by the board's filter."""

import json

import pytest

from agents.models import AuditEntry, Case, Dataset, JobStatus

from .api_support import PROBLEM, make_job, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(users):
    return token_client(users["operator"])


@pytest.fixture
def viewer(users):
    return token_client(users["viewer"])


@pytest.fixture
def dataset() -> Dataset:
    dataset = Dataset.objects.create(name="Haiku", slug="haiku")
    Case.objects.create(dataset=dataset, title="Sea", description="About the sea", tags=["p"])
    return dataset


def test_a_viewer_reads_datasets_cases_and_the_export(viewer, dataset):
    (row,) = viewer.get("/api/v1/datasets").json()["results"]
    assert (row["slug"], row["name"], row["case_count"]) == ("haiku", "Haiku", 1)
    assert viewer.get("/api/v1/datasets/haiku").json()["case_count"] == 1
    (case,) = viewer.get("/api/v1/datasets/haiku/cases").json()["results"]
    assert (case["title"], case["tags"], case["source_job"]) == ("Sea", ["p"], None)
    assert viewer.get(f"/api/v1/datasets/haiku/cases/{case['id']}").json()["title"] == "Sea"
    response = viewer.get("/api/v1/datasets/haiku/export")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert json.loads(lines[0])["title"] == "Sea" and len(lines) == 1


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/api/v1/datasets", {"name": "New"}),
        ("patch", "/api/v1/datasets/haiku", {"name": "Renamed"}),
        ("delete", "/api/v1/datasets/haiku", None),
        ("post", "/api/v1/datasets/haiku/cases", {"title": "t", "description": "d"}),
        ("post", "/api/v1/datasets/haiku/import", {"format": "jsonl", "data": "{}"}),
        ("post", "/api/v1/datasets/haiku/add-jobs", {"job_ids": [1]}),
    ],
)
def test_a_viewer_cannot_write(viewer, dataset, method, url, body):
    response = getattr(viewer, method)(url, body)
    assert response.status_code == 403 and response["Content-Type"] == PROBLEM
    assert list(Dataset.objects.values_list("name", flat=True)) == ["Haiku"]
    assert Case.objects.count() == 1


def test_someone_with_no_role_reads_nothing(users, dataset):
    nobody = token_client(users["nobody"])
    for url in ("/api/v1/datasets", "/api/v1/datasets/haiku", "/api/v1/datasets/haiku/export"):
        assert nobody.get(url).status_code == 403


def test_an_operator_keeps_datasets_and_cases(operator, users):
    response = operator.post("/api/v1/datasets", {"name": "Sea poems", "description": "x"})
    assert response.status_code == 201 and response.json()["slug"] == "sea-poems"
    url = "/api/v1/datasets/sea-poems"
    response = operator.post(
        f"{url}/cases", {"title": "Waves", "description": "On waves", "tags": ["a", "a", "b"]}
    )
    assert response.status_code == 201, response.content
    case = response.json()
    assert case["tags"] == ["a", "b"] and case["expected"] == ""
    response = operator.patch(f"{url}/cases/{case['id']}", {"expected": "Foam"})
    assert response.json()["expected"] == "Foam" and response.json()["title"] == "Waves"
    assert operator.patch(url, {"name": "Poems"}).json()["slug"] == "sea-poems"
    assert operator.delete(f"{url}/cases/{case['id']}").status_code == 204
    assert operator.delete(url).status_code == 204
    assert not Dataset.objects.exists()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "create_dataset",
        "add_case",
        "edit_case",
        "edit_dataset",
        "delete_case",
        "delete_dataset",
    ]
    assert set(AuditEntry.objects.values_list("actor", flat=True)) == {users["operator"].pk}


def test_the_case_forms_rules_apply(operator, dataset):
    response = operator.post("/api/v1/datasets/haiku/cases", {"title": " ", "description": "d"})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["#/title"]


def test_an_import_with_bad_lines_is_a_422_listing_them_and_stores_nothing(operator, dataset):
    data = "\n".join([json.dumps({"title": "A", "description": "a"}), "[]", "{"])
    response = operator.post(
        "/api/v1/datasets/haiku/import", {"format": "jsonl", "data": data}, format="json"
    )
    assert response.status_code == 422 and response["Content-Type"] == PROBLEM
    errors = [(e["pointer"], e["detail"]) for e in response.json()["errors"]]
    assert errors[0] == ("#/data", "Line 2: not a JSON object")
    assert errors[1][1].startswith("Line 3: invalid JSON")
    assert Case.objects.count() == 1


def test_a_file_is_imported_as_the_body_itself(operator, dataset):
    csv = "title,description,tags\nA,first,x;y\n"
    response = operator.post("/api/v1/datasets/haiku/import", csv.encode(), content_type="text/csv")
    assert response.status_code == 201 and response.json() == {"imported": 1}
    lines = [json.dumps({"title": "B", "description": "b"})] * 2
    response = operator.post(
        "/api/v1/datasets/haiku/import",
        "\n".join(lines).encode(),
        content_type="application/x-ndjson",
    )
    assert response.json() == {"imported": 2}
    assert list(Case.objects.values_list("title", flat=True)) == ["Sea", "A", "B", "B"]


def test_completed_jobs_are_added_by_id_once(operator, dataset):
    done = make_job(JobStatus.COMPLETED, result="Waves.")
    running = make_job(JobStatus.WORKING)
    body = {"job_ids": [done.pk, running.pk, 99999]}
    response = operator.post("/api/v1/datasets/haiku/add-jobs", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["added"], data["skipped"]) == (1, 2)
    assert data["cases"][0]["source_job"] == done.pk and data["cases"][0]["expected"] == "Waves."
    data = operator.post("/api/v1/datasets/haiku/add-jobs", body, format="json").json()
    assert (data["added"], data["skipped"]) == (0, 3)


def test_completed_jobs_are_added_by_the_boards_filter(operator, dataset):
    make_job(JobStatus.COMPLETED, title="Sea one")
    make_job(JobStatus.COMPLETED, title="Hill", description="About hills.")
    make_job(JobStatus.FAILED, title="Sea failed")
    body = {"q": "Sea"}
    data = operator.post("/api/v1/datasets/haiku/add-jobs", body, format="json").json()
    assert (data["added"], data["skipped"], data["more"]) == (1, 0, False)
    response = operator.post("/api/v1/datasets/haiku/add-jobs", {}, format="json")
    assert response.status_code == 422  # neither ids nor a filter: not every job at once
