"""The overview's series through the API: JSON, CSV, bounds and permissions."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agents import stats
from agents.models import LLMCall

from .api_support import make_job, token_client

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def viewer(users):
    return token_client(users["viewer"])


@pytest.fixture
def history():
    job = make_job(status="completed", finished_at=BASE + timedelta(minutes=30))
    for minute, model in ((5, "gpt-a"), (5, "=cmd"), (70, "gpt-a")):
        call = LLMCall.objects.create(
            job=job, purpose="plan", model=model, prompt_tokens=10, completion_tokens=5,
            cost=Decimal("0.25"), latency_s=1.0, http_status=429 if model == "=cmd" else 200,
        )  # fmt: skip
        LLMCall.objects.filter(pk=call.pk).update(created_at=BASE + timedelta(minutes=minute))
    while stats.roll_up(now=BASE + timedelta(days=1)):
        pass


def test_the_series_by_hour_as_json(viewer, history):
    response = viewer.get(
        "/api/v1/stats", {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T12:00:00Z"}
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["bucket"] == "hour" and data["bucket_s"] == 3600
    assert data["starts"] == ["2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"]
    assert data["calls"] == [2, 1] and data["tokens"] == [30, 15]
    assert data["jobs_by_outcome"] == {"completed": [1, 0], "failed": [0, 0], "cancelled": [0, 0]}
    assert data["spend_by_model"] == {"gpt-a": [0.25, 0.25], "=cmd": [0.25, 0.0]}
    assert data["errors_by_kind"]["429"] == [1, 0]
    assert data["latency_by_model"]["=cmd"]["p50"][1] is None
    assert data["in_flight"] == [2 / 3600, 1 / 3600] and data["cap"] > 0


def test_the_series_by_minute_from_a_time_in_another_zone(viewer, history):
    response = viewer.get(
        "/api/v1/stats",
        {"from": "2026-03-01T15:30:30+05:30", "to": "2026-03-01T10:10:00Z", "bucket": "minute"},
    )
    data = response.json()
    assert data["starts"][0] == "2026-03-01T10:00:00Z" and len(data["starts"]) == 10
    assert data["calls"][5] == 2 and sum(data["calls"]) == 2


@pytest.mark.parametrize("how", [{"format": "csv"}, {"HTTP_ACCEPT": "text/csv"}])
def test_the_series_as_one_csv(viewer, history, how):
    query = {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T12:00:00Z", "bucket": "hour"}
    headers = {k: v for k, v in how.items() if k.startswith("HTTP_")}
    query |= {k: v for k, v in how.items() if not k.startswith("HTTP_")}
    response = viewer.get("/api/v1/stats", query, **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    header = rows[0]
    assert header[0] == "start (UTC)" and "spend =cmd (USD)" in header
    assert [row[0] for row in rows[1:]] == [
        "2026-03-01T10:00:00+00:00",
        "2026-03-01T11:00:00+00:00",
    ]
    assert rows[1][header.index("calls")] == "2" and rows[2][header.index("errors 429")] == "0"


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-03-01T12:00:00Z", "to": "2026-03-01T10:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "bucket": "minute"},
        {"bucket": "week"},
        {"from": "yesterday"},
        {"to": "0001-01-01T00:00:00Z"},
    ],
)
def test_a_bad_or_unbounded_period_is_a_422_problem(viewer, query):
    for extra in ({}, {"format": "csv"}):
        response = viewer.get("/api/v1/stats", query | extra)
        assert response.status_code == 422, response.content
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["errors"]


def test_the_defaults_are_the_last_24_hours_by_hour(viewer):
    data = viewer.get("/api/v1/stats").json()
    assert data["bucket"] == "hour" and len(data["starts"]) in (24, 25)


def test_times_are_rfc_3339_whatever_the_year(viewer):
    # Schemathesis found it: strftime's %Y writes the year 164 as "164", not "0164".
    data = viewer.get("/api/v1/stats?to=0164-04-06T17:19:56Z&bucket=hour").json()
    assert data["start"] == "0164-04-05T17:00:00Z" and data["end"] == "0164-04-06T18:00:00Z"
    assert data["starts"][0] == "0164-04-05T17:00:00Z"


def test_reading_needs_jobs_and_calls(users):
    assert token_client(users["nobody"]).get("/api/v1/stats").status_code == 403
    assert token_client(users["viewer"]).get("/api/v1/stats").status_code == 200
