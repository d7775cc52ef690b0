"""The overview's buckets (agents.stats): sums equal the raw rows, at bucket edges and in
other time zones; rolled up exactly once, even by two workers; the open minutes read raw."""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import stats
from agents.models import Agent, Job, LLMCall, Subtask, ToolCall
from agents.stats_models import JobBucket, LLMBucket, StatsMark, ToolErrorBucket

BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
LATER = BASE + timedelta(days=1)  # every minute of the data closed
US = timedelta(microseconds=1)
# Edges of minutes and of the 10:00-11:00 hour; one given in India's zone (10:59:59.999999 UTC).
EDGES = [
    BASE + timedelta(minutes=58, seconds=59) + timedelta(seconds=1) - US,  # 10:58:59.999999
    BASE + timedelta(minutes=59),  # 10:59:00
    BASE + timedelta(minutes=59, seconds=30),
    datetime(2026, 3, 1, 16, 29, 59, 999999, tzinfo=ZoneInfo("Asia/Kolkata")),
    BASE + timedelta(hours=1),  # 11:00:00
    BASE + timedelta(hours=1, seconds=59, microseconds=999999),  # 11:00:59.999999
    BASE + timedelta(hours=1, minutes=1),  # 11:01:00
    BASE + timedelta(hours=13, minutes=59, seconds=59, microseconds=999999),  # 23:59:59.999999
    BASE + timedelta(hours=14),  # the next UTC day
]
KINDS = [  # (http_status, error, model, prompt, completion, cost, latency)
    (200, "", "gpt-a", 100, 20, "0.001000", 0.8),
    (429, "HTTP 429: slow down", "gpt-a", 0, 0, "0", 0.05),
    (503, "HTTP 503: unavailable", "gpt-b", 0, 0, "0", 2.5),
    (None, "LLM request timed out after 60.0s (ReadTimeout)", "gpt-b", 0, 0, "0", 60.0),
    (200, "", "gpt-b", 300, 70, "0.004500", 3.0),
    (None, "LLM request failed: ConnectError", "gpt-a", 0, 0, "0", 0.2),
]


def _agent(slug: str) -> Agent:
    return Agent.objects.create(name=slug.title(), slug=slug, specialties=["x"], model="gpt-a")


def _job(**fields) -> Job:
    return Job.objects.create(title="t", description="d", **fields)


def _call(job, agent, at: datetime, kind: tuple, purpose: str = "subtask") -> LLMCall:
    status, error, model, prompt, completion, cost, latency = kind
    call = LLMCall.objects.create(
        job=job, agent=agent, purpose=purpose, model=model, http_status=status, error=error,
        prompt_tokens=prompt, completion_tokens=completion, cost=Decimal(cost), latency_s=latency,
    )  # fmt: skip
    LLMCall.objects.filter(pk=call.pk).update(created_at=at)
    call.created_at = at
    return call


def _roll_all(now: datetime = LATER) -> None:
    for _ in range(1000):
        if not stats.roll_up(now=now):
            return
    raise AssertionError("the rollup did not catch up")


def _history() -> dict:
    """Calls, jobs and tool errors at the edges; what each UTC minute, hour and day holds."""
    writer, planner = _agent("writer"), _agent("planner")
    expect: dict = {"minute": Counter(), "hour": Counter(), "day": Counter()}

    def count(at: datetime, key: str, n: int | float = 1) -> None:
        for bucket, size in stats.BUCKET_S.items():
            expect[bucket][(stats.floor_to(at, size), key)] += n

    owner = _job()
    for n, at in enumerate(EDGES):
        for k, kind in enumerate(KINDS):
            agent = [writer, planner, None][(n + k) % 3]
            _call(owner, agent, at, kind)
            status, error, model, prompt, completion, cost, _ = kind
            count(at, "calls")
            count(at, "tokens", prompt + completion)
            count(at, f"cost:{model}", Decimal(cost))
            count(at, f"agent:{agent.slug if agent else stats.NO_AGENT}", Decimal(cost))
            kind_name = {429: "429", 503: "5xx"}.get(status)
            if kind_name is None and "timed out" in error:
                kind_name = "timeout"
            if kind_name:
                count(at, f"error:{kind_name}")
        for m, outcome in enumerate(stats.OUTCOMES[: 1 + n % 3]):
            job = _job(status=outcome, finished_at=at, total_cost=Decimal(n + m))
            count(at, f"job:{outcome}")
            sub = Subtask.objects.create(job=job, key="s", type="x", started_at=at)
            ToolCall.objects.create(
                job=job, subtask=sub, name="t", status="done", error="boom", finished_at=at
            )
            ToolCall.objects.create(job=job, subtask=sub, name="t", status="done", finished_at=at)
            ToolCall.objects.create(
                job=job, subtask=sub, name="t", status="rejected", error="no", finished_at=at
            )
            count(at, "error:tool")
    # Not ended: neither a job nor a tool error.
    _job(status="working")
    return expect


def _figures(overview: stats.Overview) -> Counter:
    got: Counter = Counter()
    for n, start in enumerate(overview.starts):
        pairs = [("calls", overview.calls[n]), ("tokens", overview.tokens[n])]
        pairs += [(f"job:{s}", v[n]) for s, v in overview.jobs_by_outcome.items()]
        pairs += [(f"error:{k}", v[n]) for k, v in overview.errors_by_kind.items()]
        pairs += [(f"cost:{m}", v[n]) for m, v in overview.spend_by_model.items()]
        pairs += [(f"agent:{a}", v[n]) for a, v in overview.spend_by_agent.items()]
        for key, value in pairs:
            if value:
                got[(start, key)] += round(value, 6) if isinstance(value, float) else value
    return got


def _floats(expected: Counter) -> Counter:
    return Counter({k: float(v) if isinstance(v, Decimal) else v for k, v in expected.items()})


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/St_Johns"])
def test_bucket_sums_equal_the_raw_rows_at_the_edges_in_any_time_zone(settings, zone):
    settings.TIME_ZONE = zone
    with timezone.override(ZoneInfo(zone)):
        expect = _history()
        _roll_all()
        day = datetime(2026, 3, 1, tzinfo=UTC)
        ranges = {"minute": (BASE - timedelta(hours=1), BASE + timedelta(hours=15))}
        for bucket in ("minute", "hour", "day"):
            start, end = ranges.get(bucket, (day, day + timedelta(days=2)))
            got = _figures(stats.series(start, end, bucket, now=LATER))
            assert got == _floats(expect[bucket]), bucket
    # The buckets themselves, read straight: the minute, hour and day rows of calls and jobs.
    for span in ("minute", "hour", "day"):
        calls = Counter()
        for row in LLMBucket.objects.filter(span=span):
            calls[(row.start, "calls")] += row.calls
        assert calls == Counter({k: v for k, v in expect[span].items() if k[1] == "calls"})
        jobs = Counter()
        for row in JobBucket.objects.filter(span=span):
            jobs[(row.start, f"job:{row.status}")] += row.jobs
        assert jobs == Counter({k: v for k, v in expect[span].items() if k[1].startswith("job:")})
    edge = BASE + timedelta(minutes=59)
    assert LLMBucket.objects.filter(span="minute", start=edge).count() > 0
    assert sum(r.calls for r in LLMBucket.objects.filter(span="minute", start=edge)) == 3 * len(
        KINDS
    )  # 10:59:00, 10:59:30 and the one given at 16:29:59.999999+05:30


def _snapshot() -> list:
    rows = []
    for model in (LLMBucket, JobBucket, ToolErrorBucket):
        rows += [
            tuple(v for k, v in vars(r).items() if not k.startswith("_"))
            for r in model.objects.order_by("pk")
        ]
    return rows


@pytest.mark.django_db
def test_rolling_up_again_changes_nothing():
    _history()
    _roll_all()
    before = _snapshot()
    assert stats.roll_up(now=LATER) == 0
    assert stats.roll_up(now=LATER + timedelta(hours=3)) > 0  # later, empty minutes
    _roll_all(LATER + timedelta(hours=3))
    assert _snapshot() == before


@pytest.mark.django_db
def test_a_fresh_site_is_rolled_up_from_its_oldest_row_in_bounded_passes():
    old = LATER - timedelta(days=2)
    _call(_job(), None, old + timedelta(seconds=5), KINDS[0])
    assert stats.roll_up(now=LATER) == stats.CHUNK.total_seconds() // 60
    assert StatsMark.objects.get().rolled_to == old + stats.CHUNK
    _roll_all()
    assert StatsMark.objects.get().rolled_to == stats.floor_to(LATER - stats.GRACE, 60)
    assert LLMBucket.objects.get(span="minute").start == old


@pytest.mark.django_db
def test_an_empty_site_has_nothing_to_roll_up():
    assert stats.roll_up(now=LATER) == 0
    assert StatsMark.objects.get().rolled_to is None
    overview = stats.overview("24h", now=LATER + timedelta(seconds=30))
    assert len(overview.starts) == 25 and sum(overview.calls) == 0
    assert overview.queue_wait["p50"] == [None] * 25


@pytest.mark.django_db(transaction=True)
def test_two_workers_rolling_up_at_once_count_each_row_once():
    expect = _history()
    barrier = threading.Barrier(2)
    errors = []

    def worker() -> None:
        try:
            barrier.wait()
            _roll_all()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    calls = Counter()
    for row in LLMBucket.objects.filter(span="hour"):
        calls[(row.start, "calls")] += row.calls
    assert calls == Counter({k: v for k, v in expect["hour"].items() if k[1] == "calls"})
    assert sum(r.calls for r in LLMBucket.objects.filter(span="minute")) == LLMCall.objects.count()


@pytest.mark.django_db
def test_the_open_minutes_are_read_from_the_raw_rows():
    now = BASE + timedelta(minutes=30, seconds=10)
    job = _job()
    _call(job, None, now - timedelta(minutes=5), KINDS[0])  # closed: rolled up
    _call(job, None, now - timedelta(seconds=50), KINDS[0])  # closed less than GRACE ago
    _call(job, None, now - timedelta(seconds=5), KINDS[4])  # this minute
    _job(status="completed", finished_at=now - timedelta(seconds=3))
    _roll_all(now)
    assert StatsMark.objects.get().rolled_to == BASE + timedelta(minutes=29)
    assert sum(r.calls for r in LLMBucket.objects.filter(span="minute")) == 1
    for key, bucket in (("1h", "minute"), ("24h", "hour"), ("30d", "day")):
        overview = stats.overview(key, now=now)
        assert overview.bucket == bucket
        assert sum(overview.calls) == 3, key
        assert overview.calls[-1] >= 1
        assert sum(overview.jobs_by_outcome["completed"]) == 1
        assert len(overview.starts) == len(overview.in_flight) == len(overview.tokens)
    minute = stats.overview("1h", now=now)
    assert minute.calls[-3:] == [0, 1, 1] and minute.calls[-6] == 1
    assert minute.tokens[-1] == 370


@pytest.mark.django_db
def test_percentiles_come_from_the_histogram_within_its_resolution():
    job = _job()
    latencies = [0.3 * 1.07**n for n in range(120)]  # 0.3 s .. about 1000 s
    for n, latency in enumerate(latencies):
        kind = (200, "", "gpt-a", 1, 1, "0", latency)
        _call(job, None, BASE + timedelta(seconds=n % 60), kind)
    _roll_all()
    overview = stats.series(BASE, BASE + timedelta(hours=1), "hour", now=LATER)
    ordered = sorted(latencies)
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        true = ordered[math.ceil(q * len(ordered)) - 1]
        got = overview.latency_by_model["gpt-a"][name][0]
        assert true / 2**0.25 <= got <= true * 2**0.25, (name, true, got)
    assert overview.in_flight[0] == pytest.approx(sum(latencies) / 3600)
    assert stats.percentile([], 0.5) is None


@pytest.mark.django_db
def test_queue_wait_runs_from_ready_to_claimed():
    job = _job(status="completed", finished_at=BASE + timedelta(minutes=10))
    first = Subtask.objects.create(job=job, key="a", type="x")
    second = Subtask.objects.create(job=job, key="b", type="x")
    second.depends_on.add(first)
    Subtask.objects.filter(pk=first.pk).update(
        created_at=BASE,
        started_at=BASE + timedelta(seconds=2),
        finished_at=BASE + timedelta(seconds=60),
    )  # waited 2 s
    # Ready when `first` finished (60 s), claimed at 100 s: waited 40 s.
    Subtask.objects.filter(pk=second.pk).update(
        created_at=BASE, started_at=BASE + timedelta(seconds=100)
    )
    _roll_all()
    row = JobBucket.objects.get(span="hour", status="completed")
    assert row.waits == 2
    assert row.wait_hist[stats.bin_of(2)] == 1 and row.wait_hist[stats.bin_of(40)] == 1


@pytest.mark.django_db
def test_reading_the_overview_takes_as_many_queries_for_10_calls_as_for_1000():
    job = _job()
    counts = []
    for n in (10, 1000):
        LLMCall.objects.all().delete()
        LLMBucket.objects.all().delete()
        StatsMark.objects.all().delete()
        LLMCall.objects.bulk_create(
            LLMCall(job=job, purpose="subtask", model=f"m{i % 4}", latency_s=1.0) for i in range(n)
        )
        calls = list(LLMCall.objects.only("pk"))
        for call in calls:  # spread over the last day, a minute apart
            call.created_at = LATER - timedelta(minutes=call.pk % 1440)
        LLMCall.objects.bulk_update(calls, ["created_at"], batch_size=500)
        _roll_all()
        with CaptureQueriesContext(connection) as captured:
            for key in stats.RANGES:
                assert sum(stats.overview(key, now=LATER).calls) <= n
        counts.append(len(captured))
    assert counts[0] == counts[1] <= 4 * 12


def test_bins_match_the_sql_and_bound_the_range():
    assert stats.bin_of(0.0) == 0 and stats.bin_of(0.01) == 1 and stats.bin_of(1e9) == 41
    with pytest.raises(ValueError):
        stats.buckets(BASE, BASE + timedelta(days=30), "minute")
    with pytest.raises(ValueError):
        stats.buckets(BASE, BASE, "hour")
    with pytest.raises(ValueError):
        stats.buckets(BASE, BASE + timedelta(hours=1), "week")
    assert len(stats.buckets(BASE + timedelta(minutes=1), BASE + timedelta(hours=2), "hour")) == 2


@pytest.mark.django_db
def test_the_reconcilers_pass_rolls_up_and_counts_nothing():
    from agents import recovery

    _call(_job(), None, timezone.now() - timedelta(minutes=3), KINDS[0])
    assert recovery._pass_hooks["stats"]() == 0  # routine work: no re-dispatch to count
    assert LLMBucket.objects.filter(span="minute").count() == 1
    assert StatsMark.objects.get().rolled_to > timezone.now() - timedelta(minutes=2)
