"""The overview page: who reads it, its range switch, its charts' CSVs (one row per bucket,
safe to open in a spreadsheet), escaping, and a query count that stays flat as rows grow."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import stats, team
from agents.models import Agent, Job, JobStatus, LLMCall
from agents.text import csv_cell
from dashboard import overview as page

from .cast import person

pytestmark = pytest.mark.django_db

SLUGS = [
    "jobs",
    "calls",
    "tokens",
    "spend-model",
    "spend-agent",
    "latency",
    "errors",
    "queue-wait",
    "in-flight",
]
TITLES = [
    "Jobs by outcome",
    "LLM calls",
    "Tokens",
    "Spend by model",
    "Spend by agent",
    "LLM latency p50 / p95 by model",
    "Errors by kind",
    "Queue wait p50 / p95",
    "Provider calls in flight against the cap",
]
HOSTILE = '<script>alert("x")</script>'


def made_overview(n: int = 6, *, models=("gpt-small",), agents=("researcher",), **lists):
    """An Overview as agents.stats's contract has it, made by hand: `n` minute buckets."""
    start = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    starts = [start + timedelta(minutes=i) for i in range(n)]
    ramp = list(range(n))
    return SimpleNamespace(
        start=start,
        end=start + timedelta(minutes=n),
        bucket="minute",
        bucket_s=60,
        starts=starts,
        jobs_by_outcome={"completed": ramp, "failed": [1] * n, "cancelled": [0] * n},
        calls=[3 * i for i in ramp],
        tokens=[100 * i for i in ramp],
        spend_by_model={m: [0.01 * i for i in ramp] for m in models},
        spend_by_agent={a: [0.02] * n for a in agents},
        latency_by_model={m: {"p50": [1.5] * n, "p95": [None] + [2.5] * (n - 1)} for m in models},
        errors_by_kind={"429": [1] * n, "5xx": [0] * n, "timeout": [0] * n, "tool": [2] * n},
        queue_wait={"p50": [0.2] * n, "p95": [0.9] * n},
        in_flight=[0.5 * i for i in ramp],
        cap=8,
        costliest_jobs=lists.get("costliest_jobs", []),
        latest_failures=lists.get("latest_failures", []),
    )


@pytest.fixture
def hand_made(monkeypatch):
    """Serve the page from an Overview made by hand (set `.value`); the ranges stay the
    domain's."""
    holder = SimpleNamespace(value=made_overview(), asked=[])

    def overview(key, *, now=None):
        holder.asked.append(key)
        return holder.value

    monkeypatch.setattr(stats, "overview", overview)
    return holder


def test_a_user_in_no_group_gets_the_403_page(client):
    client.force_login(person("eve"))
    for url in ("/overview/", "/overview/csv/calls/?range=1h"):
        response = client.get(url)
        assert response.status_code == 403
        assert "Ask an administrator" in response.content.decode()


def test_a_visitor_is_sent_to_log_in(client):
    response = client.get("/overview/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_viewer_reads_every_chart_with_its_table_and_csv(client, viewer, hand_made):
    response = client.get("/overview/")
    assert response.status_code == 200
    html = response.content.decode()
    assert hand_made.asked == ["24h"]
    for slug, title in zip(SLUGS, TITLES, strict=True):
        assert title in html
        assert f'href="/overview/csv/{slug}/?range=24h"' in html
        assert f'aria-labelledby="chart-{slug}-title chart-{slug}-desc"' in html
    assert html.count('<table class="chart-data">') == len(SLUGS)
    assert 'href="?range=24h" aria-current="page"' in html
    assert "does not update live" in html and 'ws-connect="/ws/overview/"' not in html
    assert '<a href="/overview/">Overview</a>' in html  # in the main navigation


def test_the_range_is_in_the_url_and_the_last_hour_is_live(client, viewer, hand_made):
    html = client.get("/overview/?range=1h").content.decode()
    assert hand_made.asked == ["1h"]
    assert 'href="?range=1h" aria-current="page"' in html
    assert 'ws-connect="/ws/overview/"' in html and "updates live" in html
    client.get("/overview/?range=7d")
    client.get("/overview/?range=nonsense")
    assert hand_made.asked == ["1h", "7d", "24h"]


def test_each_chart_has_a_csv_with_a_row_per_bucket(client, viewer, hand_made):
    hand_made.value = made_overview(6, models=("m-a", "m-b"))
    for slug in SLUGS:
        response = client.get(f"/overview/csv/{slug}/?range=1h")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert (
            response["Content-Disposition"]
            == f'attachment; filename="baton-overview-{slug}-1h.csv"'
        )
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0][0] == "bucket_start_utc"
        assert len(rows) == 1 + 6
        assert rows[1][0] == "2026-12-07T05:00:00+00:00"
    rows = list(csv.reader(io.StringIO(client.get("/overview/csv/latency/").content.decode())))
    assert rows[0] == [
        "bucket_start_utc",
        "m-a p50 (s)",
        "m-a p95 (s)",
        "m-b p50 (s)",
        "m-b p95 (s)",
    ]
    assert rows[1][1:] == ["1.5", "", "1.5", ""]  # nothing known is an empty cell
    rows = list(csv.reader(io.StringIO(client.get("/overview/csv/calls/").content.decode())))
    assert [r[1] for r in rows[1:]] == ["0", "3", "6", "9", "12", "15"]
    rows = list(csv.reader(io.StringIO(client.get("/overview/csv/in-flight/").content.decode())))
    assert rows[0][1:] == ["in flight (mean) (calls)", "cap (calls)"] and rows[3][1:] == [
        "1.0",
        "8",
    ]
    assert client.get("/overview/csv/nothing/").status_code == 404
    assert list(page.CHARTS) == SLUGS  # a route for every chart


def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote(client, viewer, hand_made):
    hand_made.value = made_overview(
        2, models=("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)"), agents=("=cmd|' /C calc'!A0",)
    )
    text = client.get("/overview/csv/spend-model/").content.decode()
    header = next(csv.reader(io.StringIO(text)))
    assert header[1:] == ["'=HYPERLINK(1) (USD)", "'+1 (USD)", "'-2 (USD)", "'@SUM(A1) (USD)"]
    header = next(
        csv.reader(io.StringIO(client.get("/overview/csv/spend-agent/").content.decode()))
    )
    assert header[1] == "'=cmd|' /C calc'!A0 (USD)"
    # Numbers are numbers to a spreadsheet, whatever their sign: only text is quoted.
    assert csv_cell("-1+2") == "'-1+2" and csv_cell(-1.5) == -1.5 and csv_cell(None) is None


def test_hostile_titles_errors_and_names_are_escaped(client, viewer, hand_made):
    failed = Job.objects.create(
        title=HOSTILE, description="d", status=JobStatus.FAILED, error=HOSTILE + "x" * 500
    )
    costly = Job.objects.create(title=f"costly {HOSTILE}", description="d")
    hand_made.value = made_overview(
        3, models=(HOSTILE,), latest_failures=[failed], costliest_jobs=[costly]
    )
    html = client.get("/overview/").content.decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert f'href="/jobs/{failed.pk}/"' in html and f'href="/jobs/{costly.pk}/"' in html
    assert "x" * 200 not in html and "x" * 100 + "…" in html  # the reason, shortened


def test_an_empty_range_says_so(client, viewer, hand_made):
    hand_made.value = made_overview(3, models=(), agents=())
    for values in (hand_made.value.calls, hand_made.value.tokens, hand_made.value.in_flight):
        values[:] = [0] * 3
    html = client.get("/overview/").content.decode()
    assert "No data in this range." in html
    assert "No jobs with a cost in this range." in html and "No failures in this range." in html


def ended_jobs(count: int, *, start: int = 0) -> None:
    """`count` jobs that ended a few minutes ago, each with two LLM calls of two models."""
    team.seed()
    agent = Agent.objects.first()
    ended = timezone.now() - timedelta(minutes=5)
    for i in range(start, start + count):
        failed = i % 3 == 0
        job = Job.objects.create(
            title=f"job {i} {HOSTILE}",
            description="d",
            status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
            error=f"{HOSTILE} went wrong" if failed else "",
            finished_at=ended,
            total_cost=Decimal(i) / 100,
        )
        for n, model in enumerate(("model-a", "model-b")):
            LLMCall.objects.create(
                job=job,
                agent=agent,
                purpose="plan",
                model=model,
                prompt_tokens=10,
                completion_tokens=5,
                latency_s=0.5 + n,
                cost=Decimal("0.01"),
                http_status=429 if failed and n else 200,
            )


def test_the_real_figures_reach_the_page_escaped(client, viewer):
    ended_jobs(4)
    html = client.get("/overview/?range=1h").content.decode()
    data = stats.overview("1h")
    assert sum(data.calls) == 8 and len(data.latest_failures) == 2
    assert "<script>" not in html and "&lt;script&gt;" in html
    for job in [*data.costliest_jobs, *data.latest_failures]:
        assert f'href="/jobs/{job.pk}/"' in html
    rows = list(
        csv.reader(io.StringIO(client.get("/overview/csv/calls/?range=1h").content.decode()))
    )
    assert len(rows) == 1 + len(data.starts) and sum(int(r[1]) for r in rows[1:]) == 8
    rows = list(
        csv.reader(io.StringIO(client.get("/overview/csv/errors/?range=1h").content.decode()))
    )
    assert sum(int(r[1]) for r in rows[1:]) == 2  # a 429 in each failed job


@pytest.mark.parametrize("key", ["1h", "24h"])
def test_the_page_reads_a_constant_number_of_queries_as_rows_grow(client, viewer, key):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/overview/?range={key}").status_code == 200
        return len(captured)

    ended_jobs(3)
    few = queries()
    ended_jobs(30, start=3)
    assert queries() == few


def test_the_live_last_hour_is_what_a_reload_shows_and_is_sent_when_it_changed(
    client, viewer, monkeypatch, settings
):
    """dashboard.live re-renders the last hour for its group at most every few seconds, and
    sends it only when it differs from the last one sent."""
    from agents.redisconn import redis_client
    from dashboard import live

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(live, "send", lambda group, html: sent.append((group, html)))
    redis = redis_client(settings.REDIS_URL) if settings.REDIS_URL else None

    def next_turn() -> None:  # the few seconds have passed
        if redis is not None:
            redis.delete(live.OVERVIEW_TURN_KEY)

    next_turn()
    if redis is not None:
        redis.delete(live.OVERVIEW_DIGEST_KEY)
    ended_jobs(2)
    assert live.refresh_overview() is True
    group, html = sent[-1]
    assert group == live.OVERVIEW_GROUP
    assert html.lstrip().startswith('<div id="overview-body" hx-swap-oob="true">')
    reload = client.get("/overview/?range=1h").content.decode()
    body = html.replace(' hx-swap-oob="true"', "", 1).strip()
    assert body in reload  # the same figures, tables and lists as the page

    if redis is not None:
        assert live.refresh_overview() is False  # not again within its turn
    next_turn()
    assert live.refresh_overview() is False  # nothing changed: nothing sent
    ended_jobs(1, start=2)
    next_turn()
    assert live.refresh_overview() is True and len(sent) == 2
    assert "job 2 " in sent[-1][1]
