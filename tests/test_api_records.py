"""What happened, through the API: a job's call trace, its shared state, and spend."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agents import state
from agents.models import Agent, LLMCall, SharedStateVersion

from .api_support import make_job, planned_job, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(users):
    return token_client(users["viewer"])


def test_a_jobs_trace_lists_its_calls_in_order(viewer):
    job = planned_job()
    LLMCall.objects.create(job=job, purpose="synthesis", model="gpt-4.1", error="HTTP 500")
    make_job().calls.create(purpose="plan", model="other job's")
    response = viewer.get(f"/api/v1/jobs/{job.pk}/calls")
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert (first["purpose"], first["subtask"], first["agent"]) == ("subtask", "draft", "coder")
    assert first["messages"] == [{"role": "user", "content": "Draft it"}]
    assert (first["total_tokens"], first["cost"], first["http_status"]) == (120, "0.001200", 200)
    assert (second["purpose"], second["agent"], second["error"]) == ("synthesis", None, "HTTP 500")


def test_the_trace_of_an_unknown_job_is_a_404(viewer):
    assert viewer.get("/api/v1/jobs/999/calls").status_code == 404


@pytest.fixture
def written():
    job = make_job()
    state.write(job.pk, {"pending_tasks": [{"id": "a"}, {"id": "b"}]}, author="orchestrator/plan")
    state.record_result(job.pk, "a", "first", author="coder/a")
    state.record_result(job.pk, "b", "second", author="reviewer/b")
    return job


def test_the_state_as_it_is_now(viewer, written):
    data = viewer.get(f"/api/v1/jobs/{written.pk}/state").json()
    assert data["version"] == 3
    assert data["data"] == {"pending_tasks": [], "results": {"a": "first", "b": "second"}}


def test_the_versions_newest_first_with_their_authors(viewer, written):
    response = viewer.get(f"/api/v1/jobs/{written.pk}/state/versions", {"limit": 2})
    page = response.json()
    assert [(v["version"], v["author"]) for v in page["results"]] == [
        (3, "reviewer/b"),
        (2, "coder/a"),
    ]
    assert page["results"][0]["changes"]["results"] == {"b": "second"}
    rest = viewer.get(page["next"]).json()["results"]
    assert [v["version"] for v in rest] == [1]


def test_one_version_whole(viewer, written):
    data = viewer.get(f"/api/v1/jobs/{written.pk}/state/versions/2").json()
    assert data["data"] == {"pending_tasks": [{"id": "b"}], "results": {"a": "first"}}
    assert data["author"] == "coder/a"
    assert viewer.get(f"/api/v1/jobs/{written.pk}/state/versions/9").status_code == 404


def test_the_diff_between_two_versions(viewer, written):
    url = f"/api/v1/jobs/{written.pk}/state/diff"
    latest = viewer.get(url).json()
    assert (latest["from_version"], latest["to_version"]) == (2, 3)
    assert {c["path"]: c["change"] for c in latest["changes"]} == {
        "pending_tasks": "changed",
        "results.b": "added",
    }
    whole = viewer.get(url, {"from": 0, "to": 3}).json()
    assert [(c["path"], c["change"], c["new"]) for c in whole["changes"]] == [
        ("pending_tasks", "added", []),
        ("results", "added", {"a": "first", "b": "second"}),
    ]
    assert viewer.get(url, {"from": 1, "to": 7}).status_code == 404
    bad = viewer.get(url, {"from": -1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["parameter"] == "from"


def test_a_job_with_no_state_yet_has_version_zero(viewer):
    job = make_job()
    job.state.delete()
    data = viewer.get(f"/api/v1/jobs/{job.pk}/state").json()
    assert data == {"version": 0, "data": {}, "updated_at": None}


def test_spend_by_agent_and_by_model_over_a_period(viewer):
    job = make_job()
    coder = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    now = timezone.now()
    for minutes_ago, agent, model, cost, error in [
        (10, coder, "gpt-4.1-mini", "0.10", ""),
        (20, coder, "gpt-4.1", "0.30", "HTTP 500"),
        (30, None, "gpt-4.1", "0.05", ""),
        (60 * 30, coder, "gpt-4.1", "9.00", ""),  # outside the default 24 hours
    ]:
        call = LLMCall.objects.create(
            job=job,
            agent=agent,
            purpose="subtask",
            model=model,
            prompt_tokens=100,
            completion_tokens=10,
            cost=cost,
            error=error,
        )
        LLMCall.objects.filter(pk=call.pk).update(created_at=now - timedelta(minutes=minutes_ago))
    data = viewer.get("/api/v1/spend").json()
    by_agent = {row["key"]: row for row in data["by_agent"]}
    assert by_agent["coder"]["calls"] == 2 and by_agent["coder"]["failed_calls"] == 1
    assert by_agent["coder"]["cost"] == "0.400000"
    assert by_agent[None]["calls"] == 1
    by_model = {row["key"]: (row["calls"], row["prompt_tokens"]) for row in data["by_model"]}
    assert by_model == {"gpt-4.1": (2, 200), "gpt-4.1-mini": (1, 100)}
    window = {"since": (now - timedelta(minutes=25)).isoformat(), "until": now.isoformat()}
    narrowed = viewer.get("/api/v1/spend", window).json()
    assert [row["key"] for row in narrowed["by_model"]] == ["gpt-4.1", "gpt-4.1-mini"]
    assert sum(row["calls"] for row in narrowed["by_agent"]) == 2


def test_a_period_that_ends_before_it_starts_is_a_422(viewer):
    now = timezone.now()
    response = viewer.get(
        "/api/v1/spend", {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "since"


def test_every_version_reads_whole_however_it_is_stored(viewer):
    job = make_job()
    expected, merged = {0: {}}, {}
    for n in range(1, 13):
        # A key rewritten each time: the changes outgrow the state, so snapshots are taken.
        changes = {"results": {f"k{n}": "x" * 20}, "draft": str(n) * 300, "step": n}
        state.write(job.pk, changes, author=f"w{n}")
        merged = state.merge(merged, changes)
        expected[n] = merged
    stored = SharedStateVersion.objects.filter(state__job=job)
    assert 0 < stored.filter(snapshot__isnull=False).count() < 12  # some rebuilt from changes
    for n in range(1, 13):
        version = viewer.get(f"/api/v1/jobs/{job.pk}/state/versions/{n}").json()
        assert version["data"] == expected[n]
    diff = viewer.get(f"/api/v1/jobs/{job.pk}/state/diff", {"from": 3, "to": 11}).json()
    paths = {"draft", "step", *(f"results.k{n}" for n in range(4, 12))}
    assert {c["path"] for c in diff["changes"]} == paths
