"""The overview's figures over time, from per-minute, hour and day buckets (agents.stats_models).

`roll_up` (on the reconciler's pass, off the hot path) folds what ended in each closed UTC
minute into a minute row and its hour and day rows, exactly once: a single watermark row
(StatsMark.rolled_to), taken FOR UPDATE, says which minutes are in. A minute is closed once
it ended more than GRACE ago, so a row that commits a moment after its timestamp still counts.
A fresh install, or a history inserted in bulk, is rolled up from its oldest row, at most
CHUNK of minutes per pass.

`overview` / `series` read the rows of their bucket (minute, hour or UTC day), plus the
few minutes not yet rolled up straight from the raw rows (an indexed scan of at most
OPEN_MAX), so the last minute is current. Every bucket is UTC, whatever the site's TIME_ZONE.

What counts where:
- an LLM call in the minute its row was recorded (`created_at`, when the call ended); its
  latency is its call-seconds there (so a call longer than the bucket adds to one bucket);
- a job in the minute it ended (`finished_at`, status completed / failed / cancelled);
- a queue wait, with its job's end: for each subtask of the job that a worker claimed (and
  not copied from another job), `started_at` (its latest claim) minus the moment it was
  ready: the latest of its `created_at` and its dependencies' `finished_at`. A retried
  subtask's wait therefore includes its earlier attempts and backoff;
- a tool error in the minute the run ended (`ToolCall.finished_at`, status done with an
  error; an operator's rejection is not an error).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from .models import JOB_TERMINAL, Job, JobStatus, LLMCall, Subtask, ToolCall
from .stats_models import JobBucket, LLMBucket, StatsMark, ToolErrorBucket

RANGES: dict[str, tuple[timedelta, str]] = {
    "1h": (timedelta(hours=1), "minute"),
    "24h": (timedelta(hours=24), "hour"),
    "7d": (timedelta(days=7), "hour"),
    "30d": (timedelta(days=30), "day"),
}
DEFAULT_RANGE = "24h"
BUCKET_S = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 1500
GRACE = timedelta(seconds=30)
CHUNK = timedelta(hours=6)  # of minutes rolled up in one pass at most
OPEN_MAX = timedelta(minutes=15)  # of raw rows a read scans at most
OUTCOMES = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)
ERROR_KINDS = ("429", "5xx", "timeout", "tool")
NO_AGENT = "(no agent)"
TOP = 10

# The histogram: bin 0 is under HIST_LOW seconds, bin i (1..HIST_BINS-2) is
# [HIST_LOW·2^((i-1)/2), HIST_LOW·2^(i/2)), the last bin everything from HIST_LOW·2^20
# (about 2.9 hours) up. A percentile is read as the geometric middle of its bin: bins are a
# factor √2 wide, so it is within a factor 2^(1/4) (about ±19 %) of the true value.
HIST_LOW = 0.01
TIMEOUT_ERROR = "LLM request timed out"  # how agents.llm starts a timeout's error
HIST_BINS = 42
_BIN_SQL = (
    "CASE WHEN {x} IS NULL OR {x} < 0.01 THEN 0 ELSE "
    "LEAST(41, 1 + floor(2 * ln({x} / 0.01) / ln(2)))::int END"
)


def bin_of(seconds: float) -> int:
    """The histogram bin of a duration (as the SQL puts it, up to rounding at the edges)."""
    if seconds < HIST_LOW:
        return 0
    return min(HIST_BINS - 1, 1 + math.floor(2 * math.log2(seconds / HIST_LOW)))


def bin_value(index: int) -> float:
    """The value a bin stands for: its geometric middle (half of HIST_LOW for bin 0)."""
    if index == 0:
        return HIST_LOW / 2
    return HIST_LOW * 2 ** ((index - 0.5) / 2)


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile (0 < q ≤ 1) of a histogram, within the bins' resolution; None if empty."""
    total = sum(hist)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(hist):
        seen += count
        if count and seen >= rank:
            return bin_value(index)
    return bin_value(len(hist) - 1)


def _add(into: list[int], hist: list[int]) -> list[int]:
    if len(into) < len(hist):
        into.extend([0] * (len(hist) - len(into)))
    for index, count in enumerate(hist):
        into[index] += count
    return into


# --- Aggregates of raw rows ---------------------------------------------------------------


@dataclass
class Calls:
    calls: int = 0
    failed: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_s: float = 0.0
    latency_hist: list[int] = field(default_factory=list)

    def add(self, other: Calls | LLMBucket) -> None:
        for name in ("calls", "failed", "rate_limited", "server_errors", "timeouts",
                     "prompt_tokens", "completion_tokens", "cost", "latency_s"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        _add(self.latency_hist, other.latency_hist)


@dataclass
class Ended:
    jobs: int = 0
    waits: int = 0
    wait_hist: list[int] = field(default_factory=list)

    def add(self, other: Ended | JobBucket) -> None:
        self.jobs += other.jobs
        self.waits += other.waits
        _add(self.wait_hist, other.wait_hist)


@dataclass
class Raw:
    """What ended in some minutes: keyed by (minute, model, agent, purpose), (minute,
    status) and minute."""

    calls: dict[tuple, Calls] = field(default_factory=dict)
    jobs: dict[tuple, Ended] = field(default_factory=dict)
    tool_errors: dict[datetime, int] = field(default_factory=dict)


def _hist(bins: list[int], counts: list[int]) -> list[int]:
    hist = [0] * HIST_BINS
    for index, count in zip(bins, counts, strict=True):
        hist[index] += count
    return hist


_CALLS_SQL = f"""
WITH binned AS (
    SELECT date_trunc('minute', c.created_at, 'UTC') AS minute, c.model,
           COALESCE(a.slug, '') AS agent, c.purpose, {_BIN_SQL.format(x="c.latency_s")} AS bin,
           count(*) AS calls,
           count(*) FILTER (WHERE c.error <> '') AS failed,
           count(*) FILTER (WHERE c.http_status = 429) AS rate_limited,
           count(*) FILTER (WHERE c.http_status BETWEEN 500 AND 599) AS server_errors,
           count(*) FILTER (WHERE c.http_status IS NULL
                            AND c.error LIKE 'LLM request timed out%%') AS timeouts,
           sum(c.prompt_tokens) AS prompt_tokens, sum(c.completion_tokens) AS completion_tokens,
           sum(c.cost) AS cost, sum(c.latency_s) AS latency_s
    FROM agents_llmcall c LEFT JOIN agents_agent a ON a.id = c.agent_id
    WHERE c.created_at >= %s AND c.created_at < %s
    GROUP BY 1, 2, 3, 4, 5
)
SELECT minute, model, agent, purpose, sum(calls), sum(failed), sum(rate_limited),
       sum(server_errors), sum(timeouts), sum(prompt_tokens), sum(completion_tokens),
       sum(cost), sum(latency_s), array_agg(bin), array_agg(calls)
FROM binned GROUP BY 1, 2, 3, 4
"""
_JOBS_SQL = """
SELECT date_trunc('minute', finished_at, 'UTC'), status, count(*)
FROM agents_job WHERE status = ANY(%s) AND finished_at >= %s AND finished_at < %s
GROUP BY 1, 2
"""
_WAITS_SQL = f"""
WITH waits AS (
    SELECT date_trunc('minute', j.finished_at, 'UTC') AS minute, j.status,
           GREATEST(0, EXTRACT(EPOCH FROM s.started_at - GREATEST(s.created_at, (
               SELECT max(d.finished_at) FROM agents_subtask_depends_on x
               JOIN agents_subtask d ON d.id = x.to_subtask_id
               WHERE x.from_subtask_id = s.id)))) AS wait
    FROM agents_job j JOIN agents_subtask s ON s.job_id = j.id
    WHERE j.status = ANY(%s) AND j.finished_at >= %s AND j.finished_at < %s
      AND s.started_at IS NOT NULL AND s.copied_from_id IS NULL
), binned AS (
    SELECT minute, status, {_BIN_SQL.format(x="wait")} AS bin, count(*) AS n
    FROM waits GROUP BY 1, 2, 3
)
SELECT minute, status, array_agg(bin), array_agg(n) FROM binned GROUP BY 1, 2
"""
_TOOLS_SQL = """
SELECT date_trunc('minute', finished_at, 'UTC'), count(*) FROM agents_toolcall
WHERE status = 'done' AND error <> '' AND finished_at >= %s AND finished_at < %s
GROUP BY 1
"""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def raw(lo: datetime, hi: datetime) -> Raw:
    """Aggregate the raw rows that ended in [lo, hi), per UTC minute (four queries)."""
    if connection.vendor != "postgresql":
        return _raw_in_python(lo, hi)
    out = Raw()
    with connection.cursor() as cursor:
        cursor.execute(_CALLS_SQL, [lo, hi])
        for minute, model, agent, purpose, *sums, bins, counts in cursor.fetchall():
            calls, failed, r429, s5xx, timeouts, pt, ct, cost, latency = sums
            out.calls[(_utc(minute), model, agent, purpose)] = Calls(
                int(calls), int(failed), int(r429), int(s5xx), int(timeouts), int(pt or 0),
                int(ct or 0), Decimal(cost or 0), float(latency or 0), _hist(bins, counts),
            )  # fmt: skip
        cursor.execute(_JOBS_SQL, [list(OUTCOMES), lo, hi])
        for minute, status, n in cursor.fetchall():
            out.jobs[(_utc(minute), status)] = Ended(jobs=int(n))
        cursor.execute(_WAITS_SQL, [list(OUTCOMES), lo, hi])
        for minute, status, bins, counts in cursor.fetchall():
            ended = out.jobs.setdefault((_utc(minute), status), Ended())
            ended.wait_hist = _hist(bins, counts)
            ended.waits = sum(counts)
        cursor.execute(_TOOLS_SQL, [lo, hi])
        for minute, n in cursor.fetchall():
            out.tool_errors[_utc(minute)] = int(n)
    return out


def _minute(moment: datetime) -> datetime:
    return _utc(moment).replace(second=0, microsecond=0)


def _raw_in_python(lo: datetime, hi: datetime) -> Raw:
    """`raw` for databases without PostgreSQL's aggregates (standalone's SQLite, whose
    history is one machine's): the same figures, summed here."""
    out = Raw()
    calls = LLMCall.objects.filter(created_at__gte=lo, created_at__lt=hi).values_list(
        "created_at", "model", "agent__slug", "purpose", "error", "http_status",
        "prompt_tokens", "completion_tokens", "cost", "latency_s",
    )  # fmt: skip
    for at, model, agent, purpose, error, status, pt, ct, cost, latency in calls.iterator():
        into = out.calls.setdefault((_minute(at), model, agent or "", purpose), Calls())
        timed_out = status is None and error.startswith(TIMEOUT_ERROR)
        server_error = status is not None and 500 <= status < 600
        into.add(Calls(
            1, int(bool(error)), int(status == 429), int(server_error), int(timed_out),
            pt, ct, cost, latency, _hist([bin_of(latency)], [1]),
        ))  # fmt: skip
    ended = Job.objects.filter(status__in=OUTCOMES, finished_at__gte=lo, finished_at__lt=hi)
    for status, at in ended.values_list("status", "finished_at").iterator():
        out.jobs.setdefault((_minute(at), status), Ended()).jobs += 1
    claimed = (
        Subtask.objects.filter(job__in=ended, started_at__isnull=False, copied_from__isnull=True)
        .select_related("job")
        .prefetch_related("depends_on")
    )
    for sub in claimed.only("job__status", "job__finished_at", "created_at", "started_at"):
        ready = max(
            [sub.created_at, *(d.finished_at for d in sub.depends_on.all() if d.finished_at)]
        )
        wait = max(0.0, (sub.started_at - ready).total_seconds())
        e = out.jobs.setdefault((_minute(sub.job.finished_at), sub.job.status), Ended())
        e.add(Ended(waits=1, wait_hist=_hist([bin_of(wait)], [1])))
    failed_tools = ToolCall.objects.filter(
        status=ToolCall.Status.DONE, finished_at__gte=lo, finished_at__lt=hi
    ).exclude(error="")
    for at in failed_tools.values_list("finished_at", flat=True).iterator():
        out.tool_errors[_minute(at)] = out.tool_errors.get(_minute(at), 0) + 1
    return out


# --- Rolling up ---------------------------------------------------------------------------


def floor_to(moment: datetime, seconds: int) -> datetime:
    """The start of the UTC bucket of `seconds` that holds `moment`."""
    epoch = int(_utc(moment).timestamp()) // seconds * seconds
    return datetime.fromtimestamp(epoch, UTC)


def _oldest() -> datetime | None:
    """The oldest moment anything ended (each through an index), or None on an empty site."""
    firsts = [
        LLMCall.objects.aggregate(at=Min("created_at"))["at"],
        Job.objects.filter(status__in=OUTCOMES).aggregate(at=Min("finished_at"))["at"],
        ToolCall.objects.filter(status=ToolCall.Status.DONE)
        .exclude(error="")
        .aggregate(at=Min("finished_at"))["at"],
    ]
    return min((at for at in firsts if at is not None), default=None)


def roll_up(now: datetime | None = None) -> int:
    """Fold the closed minutes not yet rolled up (at most CHUNK of them) into the minute and
    hour buckets; return how many minutes were folded. Two workers never fold the same
    minute: the watermark row is locked (a worker that finds it locked folds nothing)."""
    now = now or timezone.now()
    closed = floor_to(now - GRACE, 60)
    StatsMark.objects.get_or_create(pk=1)
    with transaction.atomic():
        mark = StatsMark.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if mark is None:
            return 0
        lo = mark.rolled_to
        if lo is None:
            oldest = _oldest()
            if oldest is None:
                return 0
            lo = floor_to(oldest, 60)
        if lo >= closed:
            return 0
        hi = min(closed, lo + CHUNK)
        _store(raw(lo, hi))
        mark.rolled_to = hi
        mark.save(update_fields=["rolled_to"])
    return int((hi - lo).total_seconds() // 60)


def _store(rows: Raw) -> None:
    """Insert the minutes' rows, and add them to their hours' and days' rows."""
    minutes_llm = [
        LLMBucket(span="minute", start=m, model=mo, agent=ag, purpose=pu, **vars(c))
        for (m, mo, ag, pu), c in rows.calls.items()
    ]
    minutes_jobs = [
        JobBucket(span="minute", start=m, status=st, **vars(e)) for (m, st), e in rows.jobs.items()
    ]
    minutes_tools = [
        ToolErrorBucket(span="minute", start=m, errors=n) for m, n in rows.tool_errors.items()
    ]
    LLMBucket.objects.bulk_create(minutes_llm, batch_size=1000)
    JobBucket.objects.bulk_create(minutes_jobs, batch_size=1000)
    ToolErrorBucket.objects.bulk_create(minutes_tools, batch_size=1000)

    for span, size in (("hour", 3600), ("day", 86400)):
        _add_to(span, size, rows)


def _add_to(span: str, size: int, rows: Raw) -> None:
    """Add the minutes' rows to the rows of their hours (or days), upserted."""
    llm: dict[tuple, Calls] = defaultdict(Calls)
    for (m, *key), c in rows.calls.items():
        llm[(floor_to(m, size), *key)].add(c)
    jobs: dict[tuple, Ended] = defaultdict(Ended)
    for (m, status), e in rows.jobs.items():
        jobs[(floor_to(m, size), status)].add(e)
    tools: dict[datetime, int] = defaultdict(int)
    for m, n in rows.tool_errors.items():
        tools[floor_to(m, size)] += n
    starts = {key[0] for key in llm} | {key[0] for key in jobs} | set(tools)
    if not starts:
        return
    # The rows as they are (the watermark's lock keeps them still), plus these minutes.
    for row in LLMBucket.objects.filter(span=span, start__in=starts):
        key = (row.start, row.model, row.agent, row.purpose)
        if key in llm:
            llm[key].add(row)
    for row in JobBucket.objects.filter(span=span, start__in=starts):
        if (row.start, row.status) in jobs:
            jobs[(row.start, row.status)].add(row)
    for row in ToolErrorBucket.objects.filter(span=span, start__in=starts):
        if row.start in tools:
            tools[row.start] += row.errors
    LLMBucket.objects.bulk_create(
        [
            LLMBucket(span=span, start=s, model=mo, agent=ag, purpose=pu, **vars(c))
            for (s, mo, ag, pu), c in llm.items()
        ],
        update_conflicts=True,
        unique_fields=["span", "start", "model", "agent", "purpose"],
        update_fields=list(vars(Calls())),
        batch_size=1000,
    )
    JobBucket.objects.bulk_create(
        [JobBucket(span=span, start=s, status=st, **vars(e)) for (s, st), e in jobs.items()],
        update_conflicts=True,
        unique_fields=["span", "start", "status"],
        update_fields=["jobs", "waits", "wait_hist"],
        batch_size=1000,
    )
    ToolErrorBucket.objects.bulk_create(
        [ToolErrorBucket(span=span, start=s, errors=n) for s, n in tools.items()],
        update_conflicts=True,
        unique_fields=["span", "start"],
        update_fields=["errors"],
        batch_size=1000,
    )


# --- Reading ------------------------------------------------------------------------------


@dataclass
class Overview:
    start: datetime
    end: datetime
    bucket: str
    bucket_s: int
    starts: list[datetime]
    jobs_by_outcome: dict[str, list[int]]
    calls: list[int]
    tokens: list[int]
    spend_by_model: dict[str, list[float]]
    spend_by_agent: dict[str, list[float]]
    latency_by_model: dict[str, dict[str, list[float | None]]]
    errors_by_kind: dict[str, list[int]]
    queue_wait: dict[str, list[float | None]]
    in_flight: list[float]
    cap: int
    costliest_jobs: list[Job]
    latest_failures: list[Job]


def overview(range_key: str, *, now: datetime | None = None) -> Overview:
    """The figures of one of RANGES, ending now (KeyError for an unknown range)."""
    span, bucket = RANGES[range_key]
    end = now or timezone.now()
    return series(end - span, end, bucket, now=end)


def buckets(start: datetime, end: datetime, bucket: str) -> list[datetime]:
    """The UTC bucket starts from the one holding `start` to the last before `end`;
    ValueError for an unknown bucket, an empty range, or more than MAX_BUCKETS."""
    if bucket not in BUCKET_S:
        raise ValueError(f"bucket must be one of {', '.join(BUCKET_S)}.")
    if start >= end:
        raise ValueError("start must be before end.")
    size = BUCKET_S[bucket]
    first = floor_to(start, size)
    count = math.ceil((_utc(end) - first).total_seconds() / size)
    if count > MAX_BUCKETS:
        raise ValueError(f"{count} {bucket} buckets: at most {MAX_BUCKETS}.")
    return [first + timedelta(seconds=size * n) for n in range(count)]


def series(start: datetime, end: datetime, bucket: str, *, now: datetime | None = None) -> Overview:
    """The figures in [start, end) by UTC bucket (see `buckets`): the buckets rolled up,
    plus the minutes after the watermark from the raw rows (at most OPEN_MAX of them)."""
    starts = buckets(start, end, bucket)
    size = BUCKET_S[bucket]
    lo, hi = starts[0], starts[-1] + timedelta(seconds=size)
    index = {s: n for n, s in enumerate(starts)}
    n = len(starts)

    def slot(moment: datetime) -> int | None:
        return index.get(floor_to(moment, size))

    rolled_to = StatsMark.objects.filter(pk=1).values_list("rolled_to", flat=True).first()
    calls: dict[tuple, Calls] = defaultdict(Calls)  # (slot, model, agent): no histogram
    model_hists: dict[tuple, list[int]] = defaultdict(list)  # (slot, model)
    jobs: dict[tuple, int] = defaultdict(int)  # (slot, status)
    wait_hists: dict[int, list[int]] = defaultdict(list)
    tools = [0] * n
    if rolled_to is not None and rolled_to > lo:
        span = bucket  # minute, hour and day rows alike
        lo_s = int(lo.timestamp())
        where = {"size": size, "span": span, "lo": lo, "hi": min(hi, rolled_to), "lo_s": lo_s}
        read = _read_in_sql if connection.vendor == "postgresql" else _read_in_python
        read(where, calls, model_hists, jobs, wait_hists, tools)
    # The minutes not rolled up yet (a row already in an hour's bucket is not read again:
    # an hour row holds only minutes before the watermark).
    open_from = max(lo, rolled_to or lo, (now or timezone.now()) - OPEN_MAX)
    open_from = floor_to(open_from, 60)
    if open_from < hi:
        fresh = raw(open_from, hi)
        for (m, model, agent, _purpose), c in fresh.calls.items():
            if (at := slot(m)) is not None:
                calls[(at, model, agent)].add(replace(c, latency_hist=[]))
                _add(model_hists[(at, model)], c.latency_hist)
        for (m, status), e in fresh.jobs.items():
            if (at := slot(m)) is not None:
                jobs[(at, status)] += e.jobs
                _add(wait_hists[at], e.wait_hist)
        for m, errors in fresh.tool_errors.items():
            if (at := slot(m)) is not None:
                tools[at] += errors
    return _figures(starts, lo, hi, bucket, size, calls, model_hists, jobs, wait_hists, tools)


def _read_in_sql(where: dict, calls, model_hists, jobs, wait_hists, tools) -> None:
    """Add the rolled-up rows of `where` to the read's sums, summed by PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(_READ_CALLS, where)
        for at, model, agent, *sums in cursor.fetchall():
            calls[(at, model, agent)].add(Calls(*sums))
        cursor.execute(_READ_LATENCY, where)
        for at, model, bins, counts in cursor.fetchall():
            _add(model_hists[(at, model)], _hist(bins, counts))
        cursor.execute(_READ_JOBS, where)
        for at, status, count in cursor.fetchall():
            jobs[(at, status)] += count
        cursor.execute(_READ_WAITS, where)
        for at, _, bins, counts in cursor.fetchall():
            _add(wait_hists[at], _hist(bins, counts))
        cursor.execute(_READ_TOOLS, where)
        for at, errors in cursor.fetchall():
            tools[at] += errors


def _read_in_python(where: dict, calls, model_hists, jobs, wait_hists, tools) -> None:
    """The same, for databases without PostgreSQL's array functions: the rows summed here."""
    rows = {"span": where["span"], "start__gte": where["lo"], "start__lt": where["hi"]}

    def slot(start: datetime) -> int:
        return int((_utc(start).timestamp() - where["lo_s"]) // where["size"])

    for row in LLMBucket.objects.filter(**rows).iterator():
        at = slot(row.start)
        calls[(at, row.model, row.agent)].add(replace(Calls(), **{
            name: getattr(row, name) for name in vars(Calls()) if name != "latency_hist"
        }))  # fmt: skip
        _add(model_hists[(at, row.model)], row.latency_hist)
    for row in JobBucket.objects.filter(**rows).iterator():
        jobs[(slot(row.start), row.status)] += row.jobs
        _add(wait_hists[slot(row.start)], row.wait_hist)
    for row in ToolErrorBucket.objects.filter(**rows).iterator():
        tools[slot(row.start)] += row.errors


# The buckets summed into the read's buckets: `slot` is the index of the one a row falls in.
_SLOT = "floor((extract(epoch FROM start) - %(lo_s)s) / %(size)s)::int"
_WHERE = "span = %(span)s AND start >= %(lo)s AND start < %(hi)s"
_READ_CALLS = f"""
SELECT {_SLOT}, model, agent, sum(calls)::bigint, sum(failed)::bigint,
       sum(rate_limited)::bigint, sum(server_errors)::bigint, sum(timeouts)::bigint,
       sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost),
       sum(latency_s)::float8
FROM agents_llmbucket WHERE {_WHERE} GROUP BY 1, 2, 3
"""


def _read_hists(table: str, hist: str, key: str) -> str:
    """A histogram column summed bin by bin per slot and `key`: the bins not empty, and
    their counts."""
    return f"""
    WITH bins AS (
        SELECT {_SLOT} AS slot, {key} AS key, h.i - 1 AS bin, sum(h.v)::bigint AS n
        FROM agents_{table} CROSS JOIN LATERAL unnest({hist}) WITH ORDINALITY AS h(v, i)
        WHERE {_WHERE} AND h.v > 0 GROUP BY 1, 2, 3
    )
    SELECT slot, key, array_agg(bin), array_agg(n) FROM bins GROUP BY 1, 2
    """


_READ_LATENCY = _read_hists("llmbucket", "latency_hist", "model")
_READ_WAITS = _read_hists("jobbucket", "wait_hist", "''")
_READ_JOBS = f"""
SELECT {_SLOT}, status, sum(jobs)::bigint FROM agents_jobbucket WHERE {_WHERE} GROUP BY 1, 2
"""
_READ_TOOLS = (
    f"SELECT {_SLOT}, sum(errors)::bigint FROM agents_toolerrorbucket WHERE {_WHERE} GROUP BY 1"
)


def _figures(starts, lo, hi, bucket, size, calls, model_hists, jobs, wait_hists, tools):
    n = len(starts)
    zeros = [0] * n
    by_outcome = {status: list(zeros) for status in OUTCOMES}
    for (at, status), count in jobs.items():
        if status in by_outcome:
            by_outcome[status][at] += count
    count, tokens, flight = list(zeros), list(zeros), [0.0] * n
    errors = {kind: list(zeros) for kind in ERROR_KINDS}
    errors["tool"] = tools
    by_model: dict[str, list[float]] = {}
    by_agent: dict[str, list[float]] = {}
    for (at, model, agent), c in sorted(calls.items(), key=lambda item: item[0][1:]):
        count[at] += c.calls
        tokens[at] += c.prompt_tokens + c.completion_tokens
        flight[at] += c.latency_s / size
        errors["429"][at] += c.rate_limited
        errors["5xx"][at] += c.server_errors
        errors["timeout"][at] += c.timeouts
        by_model.setdefault(model, [0.0] * n)[at] += float(c.cost)
        by_agent.setdefault(agent or NO_AGENT, [0.0] * n)[at] += float(c.cost)
    latency: dict[str, dict[str, list[float | None]]] = {}
    for (at, model), hist in sorted(model_hists.items(), key=lambda item: item[0][1]):
        quantiles = latency.setdefault(model, {"p50": [None] * n, "p95": [None] * n})
        quantiles["p50"][at] = percentile(hist, 0.5)
        quantiles["p95"][at] = percentile(hist, 0.95)
    waits = [wait_hists.get(at, []) for at in range(n)]
    ended = Job.objects.filter(status__in=JOB_TERMINAL, finished_at__gte=lo, finished_at__lt=hi)
    light = ended.defer("description", "result", "last_crash")
    return Overview(
        start=lo,
        end=hi,
        bucket=bucket,
        bucket_s=size,
        starts=starts,
        jobs_by_outcome=by_outcome,
        calls=count,
        tokens=tokens,
        spend_by_model=by_model,
        spend_by_agent=by_agent,
        latency_by_model=latency,
        errors_by_kind=errors,
        queue_wait={
            "p50": [percentile(h, 0.5) for h in waits],
            "p95": [percentile(h, 0.95) for h in waits],
        },
        in_flight=flight,
        cap=int(settings.LLM_MAX_CONCURRENCY),
        costliest_jobs=list(light.order_by("-total_cost", "-pk")[:TOP]),
        latest_failures=list(
            light.filter(status=JobStatus.FAILED).order_by("-finished_at", "-pk")[:TOP]
        ),
    )
