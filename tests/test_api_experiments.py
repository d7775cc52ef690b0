"""The experiments API: start, list, read, cancel, cases, export, compare, and a job's scores;
Viewers read, Operators run and rate, someone with no role is refused."""

from __future__ import annotations

import json

import pytest

from agents import experiments
from agents.models import Agent, Experiment, ExperimentStatus, JobStatus, Score

from .api_support import PROBLEM, make_job, token_client
from .experiments_support import code_scorers, dataset, finish, start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]


@pytest.fixture
def api(users):
    return {role: token_client(user) for role, user in users.items()}


def _errors(response) -> dict[str, str]:
    """Each pointer with its errors, one text."""
    assert response["Content-Type"] == PROBLEM
    found: dict[str, str] = {}
    for error in response.json()["errors"]:
        found[error["pointer"]] = f"{found.get(error['pointer'], '')} {error['detail']}".strip()
    return found


@pytest.fixture(autouse=True)
def coder(db) -> Agent:
    """An agent at version 1 (its first, made with it)."""
    return Agent.objects.create(slug="coder", name="Coder", specialties=["coding"])


def _ran(users, n: int = 3, **kwargs) -> Experiment:
    """An experiment whose cases all ended (each job answering `results`) and were scored."""
    results = kwargs.pop("results", ["Hello from the simulator."] * n)
    data = kwargs.pop("data", None) or dataset(n)
    experiment = start(data, users["operator"], concurrency=n, **kwargs)
    for case, result in zip(experiment.cases.order_by("position"), results, strict=True):
        finish(case.job, result)
    experiments.advance(experiment.pk)
    experiment.refresh_from_db()
    return experiment


def test_an_operator_starts_an_experiment(api, users):
    data = dataset(3)
    code_scorers()
    response = api["operator"].post(
        "/api/v1/experiments",
        {
            "dataset": data.slug,
            "scorers": ["says-simulator"],
            "agent_versions": {"coder": 1},
            "budget_tokens": 5000,
            "concurrency": 2,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    experiment = Experiment.objects.get()
    assert response["Location"].endswith(f"/api/v1/experiments/{experiment.pk}")
    assert body["status"] == "running"
    assert body["name"] == "Greetings (coder@1)"
    assert body["scorers"] == ["says-simulator"]
    assert body["agent_versions"] == {"coder": 1}
    assert body["summary"]["total"] == 3
    assert body["summary"]["running"] == 2
    assert body["url"].endswith(f"/experiments/{experiment.pk}/")
    assert experiment.created_by == users["operator"]


def test_what_it_cannot_run_is_refused_by_field(api, users):
    dataset(2)
    empty = dataset(0, slug="empty")
    code_scorers()
    post = lambda body: api["operator"].post("/api/v1/experiments", body, format="json")  # noqa: E731

    assert "#/dataset" in _errors(post({"dataset": "nope"}))
    assert "no cases" in _errors(post({"dataset": empty.slug}))["#/dataset"]
    bad = _errors(post({"dataset": "greetings", "agent_versions": {"coder": 9, "ghost": 1}}))
    assert "coder has no version 9" in bad["#/agent_versions"]
    assert "No agent ghost" in bad["#/agent_versions"]
    assert "#/budget_tokens" in _errors(post({"dataset": "greetings", "budget_tokens": 0}))
    assert "#/concurrency" in _errors(post({"dataset": "greetings", "concurrency": 51}))
    assert "#/scorers" in _errors(post({"dataset": "greetings", "scorers": ["nope"]}))
    assert not Experiment.objects.exists()


def test_viewers_read_operators_run_and_others_are_refused(api, users):
    experiment = start(dataset(2), users["operator"])
    for role in ("viewer", "operator"):
        assert api[role].get("/api/v1/experiments").status_code == 200
        assert api[role].get(f"/api/v1/experiments/{experiment.pk}").status_code == 200
        assert api[role].get(f"/api/v1/experiments/{experiment.pk}/cases").status_code == 200
    assert api["nobody"].get("/api/v1/experiments").status_code == 403
    assert api["nobody"].get(f"/api/v1/experiments/{experiment.pk}").status_code == 403
    assert api["nobody"].get(f"/api/v1/experiments/{experiment.pk}/cases").status_code == 403
    for role in ("viewer", "nobody", "manager"):
        refused = api[role].post("/api/v1/experiments", {"dataset": "greetings"}, format="json")
        assert refused.status_code == 403
        cancel = api[role].post(f"/api/v1/experiments/{experiment.pk}/cancel")
        assert cancel.status_code == 403
    assert Experiment.objects.count() == 1
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_the_list_and_the_summary(api, users):
    experiment = _ran(users, results=["Hello from the simulator.", "Hi.", "Hello, simulator!"])
    listed = api["viewer"].get("/api/v1/experiments").json()["results"]
    assert [e["id"] for e in listed] == [experiment.pk]

    body = api["viewer"].get(f"/api/v1/experiments/{experiment.pk}").json()
    assert body["status"] == "completed"
    summary = body["summary"]
    assert (summary["total"], summary["done"], summary["scored"]) == (3, 3, 3)
    says = next(s for s in summary["scorers"] if s["scorer"] == "says-simulator")
    # 1, 0, 1 → mean 2/3; 2 of 3 at or above 0.5
    assert says["n"] == 3
    assert says["mean"] == pytest.approx(2 / 3)
    assert says["pass_rate"] == pytest.approx(2 / 3)
    assert says["ci_low"] < says["mean"] < says["ci_high"]
    assert summary["tokens"] == 300


def test_cancel_then_cancel_again_conflicts(api, users):
    experiment = start(dataset(3), users["operator"], concurrency=2)
    response = api["operator"].post(f"/api/v1/experiments/{experiment.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert {c.job.status for c in experiment.cases.exclude(job=None)} == {JobStatus.CANCELLED}
    again = api["operator"].post(f"/api/v1/experiments/{experiment.pk}/cancel")
    assert again.status_code == 409
    assert again["Content-Type"] == PROBLEM


def test_the_cases_in_order_with_their_outputs_and_scores(api, users):
    experiment = _ran(users, n=2, results=["Hello from the simulator.", "Hi."])
    page = api["viewer"].get(f"/api/v1/experiments/{experiment.pk}/cases?limit=1").json()
    (first,) = page["results"]
    assert (first["position"], first["status"], first["output"]) == (
        1,
        "completed",
        "Hello from the simulator.",
    )
    assert first["scores"]["Says simulator"]["value"] == 1.0
    second = api["viewer"].get(page["next"]).json()["results"][0]
    assert (second["position"], second["scores"]["Says simulator"]["value"]) == (2, 0.0)


def test_export_as_csv_and_jsonl(api, users):
    experiment = _ran(users, n=2, results=["=HYPERLINK(1)", "Hello from the simulator."])
    url = f"/api/v1/experiments/{experiment.pk}/export"
    csv = api["viewer"].get(url, {"format": "csv"})
    assert csv.status_code == 200
    assert csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0].startswith("position,title,status,output,tokens,cost,latency_s,score:")
    assert "'=HYPERLINK(1)" in lines[1]  # a formula is not one in a spreadsheet

    jsonl = api["viewer"].get(url, {"format": "jsonl"})
    rows = [json.loads(line) for line in jsonl.content.decode().splitlines()]
    assert [(r["position"], r["score:Says simulator"]) for r in rows] == [(1, 0.0), (2, 1.0)]
    assert rows[0]["output"] == "=HYPERLINK(1)"
    bad = api["viewer"].get(url, {"format": "xls"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["parameter"] == "format"


def test_compare_two_experiments(api, users):
    data = dataset(3)
    a = _ran(users, data=data, results=["Hi.", "Hi.", "Hello, simulator."])
    b = _ran(
        users,
        data=data,
        versions={"coder": 1},
        results=["Hello, simulator.", "Hello, simulator.", "Hello, simulator."],
    )
    body = api["viewer"].get(f"/api/v1/experiments/{a.pk}/compare/{b.pk}").json()
    assert (body["a"]["id"], body["b"]["id"]) == (a.pk, b.pk)
    says = next(s for s in body["scorers"] if s["name"] == "Says simulator")
    # B wins cases 1 and 2 (1 against 0), ties case 3; diff = 1 − 1/3
    assert (says["wins"], says["losses"], says["ties"]) == (2, 0, 1)
    assert says["diff"] == pytest.approx(2 / 3)
    assert [c["position"] for c in body["cases"]] == [1, 2, 3]
    assert body["cases"][0]["scores_a"]["Says simulator"] == 0.0
    assert body["versions"] == [{"agent": "coder", "a": None, "b": 1}]
    missing = api["viewer"].get(f"/api/v1/experiments/{a.pk}/compare/999999")
    assert missing.status_code == 404


def test_a_job_is_rated_and_its_scores_read(api, users):
    job = make_job(JobStatus.COMPLETED, result="An answer.")
    url = f"/api/v1/jobs/{job.pk}/scores"
    rated = api["operator"].post(url, {"rating": 4, "comment": "Good"}, format="json")
    assert rated.status_code == 201, rated.json()
    assert (rated.json()["rating"], rated.json()["value"]) == (4, 0.75)
    assert rated.json()["given_by"] == users["operator"].username

    scores = api["viewer"].get(url).json()
    assert [(s["source"], s["rating"], s["reason"]) for s in scores] == [("human", 4, "Good")]
    assert api["nobody"].get(url).status_code == 403
    assert api["viewer"].post(url, {"rating": 3}, format="json").status_code == 403
    assert "#/rating" in _errors(api["operator"].post(url, {"rating": 6}, format="json"))

    running = make_job(JobStatus.WORKING)
    refused = api["operator"].post(
        f"/api/v1/jobs/{running.pk}/scores", {"rating": 3}, format="json"
    )
    assert refused.status_code == 409
    assert Score.objects.count() == 1
