"""Page times at scale: the dashboard and admin pages over a large, realistic history.

Builds 10,000 jobs, 50,000 subtasks, 71,000 LLM calls and 63,000 shared-state versions
(texts as long as real prompts, answers and results, so that searches are honest) in its own
PostgreSQL database `baton_pages`, rolls the history up into the overview's buckets (as the
reconciler's passes would), then requests each page with Django's test client as a
superuser (30 hits after a warm-up) and prints p50/p95 server time and the query count.

Usage: DATABASE_URL=postgresql://... python bench/pages.py [--hits 30] [--keep] [--reuse]
                                                          [--only overview]
--keep leaves the database in place; --reuse measures a kept one without rebuilding it;
--only measures only the pages whose name holds the text.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "baton_pages"
JOBS, SUBTASKS, CALLS, VERSIONS = 10_000, 50_000, 71_000, 63_000
PAGE_TARGET_MS, SEARCH_TARGET_MS, OVERVIEW_TARGET_MS = 100, 300, 150
CHUNK = 500  # jobs built per transaction
HISTORY = timedelta(days=14)
ACTIVE = {"queued": 30, "planning": 10, "waiting": 15, "working": 80, "synthesizing": 10}
EXTRA_AGENTS = [
    ("writer", "Writer", ["writing", "documentation"], "gpt-4.1-mini"),
    ("analyst", "Analyst", ["analysis", "data"], "gpt-4.1"),
    ("tester", "Tester", ["testing", "quality"], "gpt-4.1-mini"),
    ("designer", "Designer", ["design", "ux"], "gpt-4.1-mini"),
]
COMMON = (
    "the of and to a in is that for it as with be on by this are or an from at which we can "
    "should will not has have its their each more when than one all but also if into only new "
    "first then so may these how where what other two most some any used use need make"
).split()
TECHNICAL = (
    "service database index query latency cache queue worker request response schema table "
    "migration deployment cluster container kubernetes docker redis postgres replica shard "
    "partition throughput benchmark profile memory thread process socket protocol endpoint "
    "payload token budget model prompt agent planner reviewer pipeline retry backoff timeout "
    "failure recovery consistency transaction isolation lock deadlock contention snapshot "
    "version history audit compliance security encryption certificate rotation secret vault "
    "gateway proxy balancer ingress network bandwidth storage bucket object archive backup "
    "restore disaster region zone availability monitoring alert metric dashboard tracing span "
    "log aggregation pricing forecast revenue churn cohort funnel experiment variant rollout "
    "feature flag canary regression coverage fixture assertion mock integration contract "
    "idempotent idempotency ordering exactly-once at-least-once compaction vacuum bloat "
    "vector embedding retrieval ranking relevance recall precision evaluation dataset label "
    "annotation pipeline scheduler cron batch stream kafka consumer producer offset lag "
    "serialization json protobuf avro compression gzip checksum hashing bloom sketch"
).split()
SYLLABLES = "ka lo mi ne ru ta vex zor pil dra qua fen ost bri mun sel tor gav hy lex".split()
TOPICS = [
    "vector databases", "rate limiter design", "Postgres upgrade", "Kafka consumer lag",
    "incident postmortem", "pricing page copy", "onboarding funnel", "Redis eviction",
    "Django admin performance", "search relevance", "backup strategy", "TLS certificate rotation",
    "feature flag cleanup", "load test plan", "churn analysis", "API versioning",
    "embedding model choice", "CI pipeline speed", "data retention policy", "SSO rollout",
]  # fmt: skip
VERBS = ["Compare", "Evaluate", "Draft", "Review", "Plan", "Investigate", "Summarise", "Design"]


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    rare = {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(4000)}
    words = COMMON + TECHNICAL + sorted(rare)
    # Zipf: a few words everywhere, a long tail of rare ones.
    weights = [1 / (rank + 1) for rank in range(len(words))]
    return words, weights


class Text:
    """Prose from a pool of sentences: fast to make, with a realistic spread of words."""

    def __init__(self, rng: random.Random) -> None:
        words, weights = _vocabulary(rng)
        self.rng = rng
        self.sentences = []
        for _ in range(30_000):
            chosen = rng.choices(words, weights, k=rng.randint(6, 24))
            self.sentences.append(" ".join(chosen).capitalize() + ".")

    def prose(self, chars: int) -> str:
        out, size = [], 0
        while size < chars:
            sentence = self.rng.choice(self.sentences)
            out.append(sentence)
            size += len(sentence) + 1
        return " ".join(out)

    def markdown(self, chars: int) -> str:
        parts, size = [], 0
        while size < chars:
            kind = self.rng.random()
            if kind < 0.2:
                block = "## " + self.prose(30)[:60]
            elif kind < 0.4:
                block = "\n".join(f"- {self.prose(40)[:90]}" for _ in range(self.rng.randint(2, 5)))
            elif kind < 0.5:
                block = "```python\n" + self.prose(120).replace(". ", "\n") + "\n```"
            else:
                block = self.prose(self.rng.randint(200, 600))
            parts.append(block)
            size += len(block)
        return "\n\n".join(parts)

    def length(self, low: int, high: int) -> int:
        return int(self.rng.triangular(low, high, low + (high - low) / 4))


def _spread(rng: random.Random, n: int, total: int, low: int, high: int) -> list[int]:
    """`n` integers in [low, high] that add up to exactly `total`."""
    counts = [rng.randint(low, high) for _ in range(n)]
    diff = total - sum(counts)
    while diff:
        i = rng.randrange(n)
        step = 1 if diff > 0 else -1
        if low <= counts[i] + step <= high:
            counts[i] += step
            diff -= step
    return counts


def _job_statuses(rng: random.Random) -> list[str]:
    """Oldest first: a settled history, then the jobs still moving."""
    active = [status for status, n in ACTIVE.items() for _ in range(n)]
    rng.shuffle(active)
    settled = rng.choices(["completed", "failed", "cancelled"], [88, 8, 4], k=JOBS - len(active))
    return settled + active


def _subtask_statuses(rng: random.Random, job_status: str, n: int) -> list[str]:
    if job_status == "completed" or job_status == "synthesizing":
        return ["completed"] * n
    if job_status == "waiting":
        return ["waiting"] * n
    if job_status == "failed":
        at = rng.randrange(n)
        return ["completed"] * at + ["failed"] + ["cancelled"] * (n - at - 1)
    if job_status == "cancelled":
        at = rng.randrange(n + 1)
        return ["completed"] * at + ["cancelled"] * (n - at)
    # working: done, then running, then waiting
    done = rng.randrange(n)
    running = min(n - done, rng.randint(1, 2))
    moving = [rng.choice(["queued", "working"]) for _ in range(running)]
    return ["completed"] * done + moving + ["waiting"] * (n - done - running)


@contextmanager
def _stamps_as_given(*models) -> Iterator[None]:
    """Keep the created_at the builder sets: auto_now_add would overwrite a whole history."""
    fields = [m._meta.get_field("created_at") for m in models]
    for field in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field in fields:
            field.auto_now_add = True


def build(seed: int = 7) -> None:
    """The data set, a superuser `bench`, and one job of twelve subtasks (`step-12`)."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from agents import team
    from agents.models import (
        Agent,
        AuditEntry,
        Job,
        LLMCall,
        SharedState,
        SharedStateVersion,
        Subtask,
    )

    rng = random.Random(seed)
    text = Text(rng)
    team.seed()
    for slug, name, specialties, model in EXTRA_AGENTS:
        Agent.objects.get_or_create(
            slug=slug, defaults={"name": name, "specialties": specialties, "model": model}
        )
    agents = list(Agent.objects.all())
    planner = next(a for a in agents if a.slug == "orchestrator")
    specialists = [a for a in agents if not a.is_orchestrator]
    admin = User.objects.create_superuser("bench", password="bench-pages-1")
    submitters = [User.objects.create_user(f"user{i}", password="x") for i in range(20)]

    statuses = _job_statuses(rng)
    planned = [i for i, s in enumerate(statuses) if s not in ("queued", "planning")]
    big = JOBS - sum(ACTIVE.values()) - 1  # the newest finished job has the most to show
    statuses[big] = "completed"
    others = [i for i in planned if i != big]
    per_job = dict(zip(others, _spread(rng, len(others), SUBTASKS - 12, 2, 8), strict=True))
    per_job[big] = 12
    sub_statuses = {i: _subtask_statuses(rng, statuses[i], per_job[i]) for i in planned}

    # Calls: a plan per planned job, one per subtask that ended, a synthesis per completed
    # job, and failed attempts before an outcome, spread until the total is exact.
    ran = [
        (i, k)
        for i in planned
        for k, s in enumerate(sub_statuses[i])
        if s in ("completed", "failed")
    ]
    base = len(planned) + len(ran) + sum(1 for i in planned if statuses[i] == "completed")
    retries = {(big, k): 2 for k in range(12)}
    for _ in range(CALLS - base - sum(retries.values())):
        key = ran[rng.randrange(len(ran))]
        retries[key] = retries.get(key, 0) + 1
    # Versions: the plan, each result, the final answer; notes or fewer finals to be exact.
    natural = {
        i: 1 + sub_statuses[i].count("completed") + (statuses[i] == "completed") for i in planned
    }
    extra = VERSIONS - sum(natural.values())
    finals = [i for i in planned if statuses[i] == "completed" and i != big]
    drop_final = set(rng.sample(finals, -extra)) if extra < 0 else set()
    notes = _spread(rng, len(planned), extra, 0, 3) if extra > 0 else [0] * len(planned)
    notes_of = dict(zip(planned, notes, strict=True))

    now = timezone.now()
    start = now - HISTORY
    step = HISTORY / JOBS
    stats = {"calls": 0, "versions": 0, "subtasks": 0}
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    with _stamps_as_given(Job, Subtask, LLMCall, SharedStateVersion, AuditEntry):
        for first in range(0, JOBS, CHUNK):
            with transaction.atomic():
                rows = _build_chunk(
                    range(first, min(first + CHUNK, JOBS)),
                    text=text, rng=rng, statuses=statuses, sub_statuses=sub_statuses,
                    retries=retries, drop_final=drop_final, notes_of=notes_of, start=start,
                    step=step, now=now, planner=planner, specialists=specialists,
                    submitters=submitters,
                )  # fmt: skip
            for key in stats:
                stats[key] += rows[key]
        AuditEntry.objects.bulk_create(
            AuditEntry(
                created_at=start + HISTORY * n / 60, actor=admin, agent=rng.choice(agents),
                action=rng.choice(["enable_agent", "disable_agent", "edit_agent"]),
            )
            for n in range(60)
        )  # fmt: skip
    assert stats == {"calls": CALLS, "versions": VERSIONS, "subtasks": SUBTASKS}, stats
    assert Job.objects.count() == JOBS and SharedState.objects.count() == JOBS


def _build_chunk(indexes, *, text, rng, statuses, sub_statuses, retries, drop_final, notes_of,
                 start, step, now, planner, specialists, submitters) -> dict:  # fmt: skip
    from agents.models import (
        AuditEntry,
        Job,
        LLMCall,
        SharedState,
        SharedStateVersion,
        Subtask,
    )

    jobs = []
    for i in indexes:
        created = start + step * i
        status = statuses[i]
        done = status in ("completed", "failed", "cancelled")
        jobs.append(
            Job(
                title=f"{rng.choice(VERBS)} {rng.choice(TOPICS)}: {text.prose(40)[:60]}",
                description=text.prose(text.length(150, 3000)),
                priority=rng.randint(0, 9),
                status=status,
                status_reason="" if status != "failed" else "A subtask failed for good.",
                submitted_by=rng.choice(submitters),
                result=text.markdown(text.length(800, 5000)) if status == "completed" else "",
                error="HTTP 500 from the provider" if status == "failed" else "",
                review_plan=status == "waiting",
                created_at=created,
                planned_at=created + timedelta(seconds=8) if i in sub_statuses else None,
                finished_at=created + timedelta(seconds=rng.randint(30, 600)) if done else None,
            )
        )
    Job.objects.bulk_create(jobs)
    job_of = {i: job for i, job in zip(indexes, jobs, strict=True)}

    subtasks, audit = [], []
    for i, job in job_of.items():
        audit.append(
            AuditEntry(
                created_at=job.created_at, actor=job.submitted_by, action="submit", job=job,
                detail=job.title,
            )
        )  # fmt: skip
        for k, status in enumerate(sub_statuses.get(i, [])):
            agent = rng.choice(specialists)
            began = job.created_at + timedelta(seconds=10 + 20 * k)
            result = text.markdown(text.length(300, 3500)) if status == "completed" else ""
            subtasks.append(
                Subtask(
                    job=job, key=f"step-{k + 1}", type=agent.specialties[0],
                    payload={"description": text.prose(text.length(80, 400))},
                    agent=None if status == "waiting" else agent,
                    allocation={"chosen": agent.slug, "by": "score"},
                    status=status, result=result,
                    error="HTTP 400: the request was rejected" if status == "failed" else "",
                    retry_count=min(retries.get((i, k), 0), 3),
                    attempts=0 if status == "waiting" else 1 + retries.get((i, k), 0),
                    latency_s=rng.uniform(0.5, 30) if result else None,
                    tokens=rng.randint(300, 4000) if result else 0,
                    created_at=job.created_at + timedelta(seconds=8),
                    started_at=None if status == "waiting" else began,
                    finished_at=began + timedelta(seconds=15) if result else None,
                )
            )  # fmt: skip
    Subtask.objects.bulk_create(subtasks)
    by_job: dict[int, list] = {}
    for sub in subtasks:
        by_job.setdefault(sub.job_id, []).append(sub)
    through = Subtask.depends_on.through
    Subtask.depends_on.through.objects.bulk_create(
        through(from_subtask_id=subs[n].pk, to_subtask_id=subs[n - 1].pk)
        for subs in by_job.values()
        for n in range(1, len(subs))
        if rng.random() < 0.6
    )

    calls, states, versions = [], [], []
    for i, job in job_of.items():
        subs = by_job.get(job.pk, [])
        if i not in sub_statuses:
            states.append(SharedState(job=job, data={}, version=0))
            continue
        pending = [{"id": s.key, "type": s.type, "description": s.description} for s in subs]
        at = job.created_at + timedelta(seconds=2)
        first = len(versions)
        calls.append(_call(text, rng, planner, job, None, "plan", at, ok=True))
        data = {"pending_tasks": pending}
        versions.append((job, data, {"pending_tasks": pending}, f"{planner.slug}/plan", at))
        for k, sub in enumerate(subs):
            if sub.status not in ("completed", "failed"):
                continue
            for attempt in range(retries.get((i, k), 0)):
                at = sub.started_at + timedelta(seconds=attempt)
                calls.append(_call(text, rng, sub.agent, job, sub, "subtask", at, ok=False))
            ok = sub.status == "completed"
            calls.append(_call(text, rng, sub.agent, job, sub, "subtask", sub.started_at, ok=ok,
                               response=sub.result))  # fmt: skip
            if ok:
                pending = [p for p in pending if p["id"] != sub.key]
                change = {"results": {sub.key: sub.result}, "pending_tasks": pending}
                data = {**data, "pending_tasks": pending,
                        "results": {**data.get("results", {}), sub.key: sub.result}}  # fmt: skip
                versions.append((job, data, change, f"{sub.agent.slug}/{sub.key}", sub.finished_at))
        for n in range(notes_of[i]):
            change = {"notes": text.prose(120)}
            data = {**data, **change}
            versions.append((job, data, change, "operator/note", at + timedelta(seconds=n + 1)))
        if job.status == "completed":
            at = job.finished_at
            calls.append(_call(text, rng, planner, job, None, "synthesis", at, ok=True,
                               response=job.result))  # fmt: skip
            if i not in drop_final:
                data = {**data, "final": job.result}
                versions.append((job, data, {"final": job.result}, "orchestrator/synthesis", at))
        states.append(SharedState(job=job, data=data, version=len(versions) - first))
    # A job that is still moving can be newer than one minute: keep the history in the past.
    for call in calls:
        call.created_at = min(call.created_at, now)
    LLMCall.objects.bulk_create(calls, batch_size=1000)
    SharedState.objects.bulk_create(states)
    state_of = {s.job_id: s for s in states}
    rows, numbers = [], {}
    for job, _data, change, author, at in versions:
        state = state_of[job.pk]
        numbers[state.pk] = numbers.get(state.pk, 0) + 1
        rows.append(
            SharedStateVersion(
                state=state, version=numbers[state.pk], changes=change, author=author,
                created_at=min(at, now),
            )
        )  # fmt: skip
    SharedStateVersion.objects.bulk_create(rows, batch_size=1000)
    AuditEntry.objects.bulk_create(audit)
    return {
        "calls": len(calls),
        "versions": len(rows),
        "subtasks": len(subtasks),
    }


def _call(text, rng, agent, job, sub, purpose, at, *, ok: bool, response: str | None = None):
    from agents.models import LLMCall

    user = f"Job: {job.title}\n\n{job.description}"
    if sub is not None:
        user += f"\n\nYour subtask ({sub.type}): {sub.description}"
    if purpose == "synthesis":
        user += "\n\n" + text.prose(text.length(500, 4000))
    messages = [{"role": "system", "content": agent.system_prompt or agent.name},
                {"role": "user", "content": user}]  # fmt: skip
    if not ok:
        status = rng.choice([429, 500, 502, 503])
        return LLMCall(
            agent=agent, job=job, subtask=sub, purpose=purpose, model=agent.model,
            messages=messages, http_status=status, error=f"HTTP {status}: {text.prose(60)}",
            latency_s=rng.uniform(0.1, 5), created_at=at,
        )  # fmt: skip
    if response is None:
        response = text.markdown(text.length(300, 4000))
    prompt, completion = len(user) // 4, len(response) // 4
    price = Decimal("0.000002") if agent.model == "gpt-4.1" else Decimal("0.0000004")
    return LLMCall(
        agent=agent, job=job, subtask=sub, purpose=purpose, model=agent.model,
        messages=messages, response=response, prompt_tokens=prompt,
        completion_tokens=completion, latency_s=rng.uniform(0.5, 30), http_status=200,
        finish_reason="stop", cost=price * (prompt + 4 * completion), created_at=at,
    )  # fmt: skip


def _search_words() -> tuple[str, str]:
    """A mid-frequency word and a rare one, as an operator might look either up."""
    words, _ = _vocabulary(random.Random(7))
    rare = words[len(COMMON) + len(TECHNICAL) + 1500]
    return "idempotency", rare


def pages(big_job: int) -> list[tuple[str, str, int]]:
    common, rare = _search_words()
    dash = [
        ("board", "/", PAGE_TARGET_MS),
        ("board, one status (completed)", "/?status=completed", PAGE_TARGET_MS),
        ("board, one status, page 40", "/?status=completed&page=40", PAGE_TARGET_MS),
        (f"board text search ({common})", f"/?q={common}", PAGE_TARGET_MS),
        (f"board text search ({rare})", f"/?q={rare}", PAGE_TARGET_MS),
        ("board text search (the: in every job)", "/?q=the", PAGE_TARGET_MS),
        (f"job detail (job #{big_job}, 12 subtasks)", f"/jobs/{big_job}/", PAGE_TARGET_MS),
        ("agents", "/agents/", PAGE_TARGET_MS),
    ]
    admin = [
        (f"admin {name} changelist", f"/admin/agents/{name}/", PAGE_TARGET_MS)
        for name in (
            "job", "subtask", "llmcall", "agent", "auditentry", "sharedstate",
            "sharedstateversion", "modelprice",
        )
    ]  # fmt: skip
    admin += [
        ("admin llmcall, one model", "/admin/agents/llmcall/?model=gpt-4.1", PAGE_TARGET_MS),
        ("admin subtask, one status", "/admin/agents/subtask/?status=failed", PAGE_TARGET_MS),
        (f"admin job change (#{big_job})", f"/admin/agents/job/{big_job}/change/", PAGE_TARGET_MS),
    ]
    searches = [
        (f"admin job search ({common})", f"/admin/agents/job/?q={common}", SEARCH_TARGET_MS),
        (f"admin subtask search ({rare})", f"/admin/agents/subtask/?q={rare}", SEARCH_TARGET_MS),
        ("admin subtask search (step-3)", "/admin/agents/subtask/?q=step-3", SEARCH_TARGET_MS),
        (f"admin llmcall search ({common})", f"/admin/agents/llmcall/?q={common}",
         SEARCH_TARGET_MS),
        (f"admin llmcall search ({rare})", f"/admin/agents/llmcall/?q={rare}", SEARCH_TARGET_MS),
        ("admin llmcall search (HTTP 429)", "/admin/agents/llmcall/?q=HTTP+429",
         SEARCH_TARGET_MS),
        ("admin llmcall search (the: in every call)", "/admin/agents/llmcall/?q=the",
         SEARCH_TARGET_MS),
        ("admin auditentry search (user3)", "/admin/agents/auditentry/?q=user3",
         SEARCH_TARGET_MS),
        (f"admin sharedstate search ({common})", f"/admin/agents/sharedstate/?q={common}",
         SEARCH_TARGET_MS),
    ]  # fmt: skip
    return dash + admin + searches + overview_pages()


def overview_pages() -> list[tuple[str, str, int]]:
    """The overview (issue 19) for each range, and the same series through the API."""
    from django.utils import timezone

    from agents import stats

    now = timezone.now()
    rows = [
        (f"overview ({key})", f"/overview/?range={key}", OVERVIEW_TARGET_MS) for key in stats.RANGES
    ]
    for key, (span, bucket) in stats.RANGES.items():
        since = (now - span).strftime("%Y-%m-%dT%H:%M:%SZ")
        url = f"/api/v1/stats?from={since}&bucket={bucket}"
        rows.append(
            (f"overview API, GET /api/v1/stats ({key}, by {bucket})", url, OVERVIEW_TARGET_MS)
        )
    return rows


def roll_up() -> None:
    """Fold the built history into the overview's buckets, as the reconciler's passes would."""
    from agents import stats

    began, passes = time.monotonic(), 0
    while stats.roll_up():
        passes += 1
    print(f"rolled up in {passes} passes, {time.monotonic() - began:.1f} s", file=sys.stderr)


def measure(client, url: str, hits: int) -> tuple[float, float, int, int]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    times, queries, status = [], 0, 0
    for n in range(hits + 2):
        reset_queries()  # the log keeps 9,000 queries: a full one would capture none
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - began) * 1000
        status = response.status_code
        if n >= 2:  # the first two warm caches
            times.append(elapsed)
            queries = max(queries, len(captured))
    times.sort()
    p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, queries, status


@contextmanager
def _database(base_url: str, reuse: bool, keep: bool) -> Iterator[bool]:
    """Point Django's default connection at our own database; yield whether to build."""
    import psycopg
    from django.db import connection

    admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as pg:
        exists = pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not (reuse and exists):
            pg.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
            pg.execute(f"CREATE DATABASE {DB_NAME}")
    connection.close()
    previous = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = DB_NAME
    try:
        yield not (reuse and exists)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = previous
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as pg:
                pg.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database")
    parser.add_argument("--only", default="", help="measure only the pages whose name has this")
    args = parser.parse_args(argv if argv is not None else [])
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        sys.exit("bench/pages.py needs DATABASE_URL=postgresql://... (it makes its own database)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from agents.models import Job

    with _database(base_url, args.reuse, args.keep) as fresh:
        call_command("migrate", verbosity=0)
        if fresh:
            began = time.monotonic()
            build()
            connection.close()
            with connection.cursor() as cursor:  # as autovacuum would have, long before now
                cursor.execute("VACUUM ANALYZE")
            print(f"built in {time.monotonic() - began:.0f} s", file=sys.stderr)
        roll_up()
        big_job = Job.objects.filter(subtasks__key="step-12").values_list("pk", flat=True)[0]
        client = Client(SERVER_NAME="localhost")
        client.force_login(User.objects.get(username="bench"))
        rows = []
        for name, url, target in pages(big_job):
            if args.only not in name:
                continue
            p50, p95, queries, status = measure(client, url, args.hits)
            rows.append({"page": name, "url": url, "p50_ms": round(p50, 1),
                         "p95_ms": round(p95, 1), "queries": queries, "status": status,
                         "target_ms": target, "met": status == 200 and p95 <= target})  # fmt: skip
            print(f"{name}: {p95:.1f} ms, {queries} queries", file=sys.stderr)
        connection.close()
    print(_table(rows))
    print(f"\nLoad average (1, 5, 15 min) at the end: {os.getloadavg()}")
    return rows


def _table(rows: list[dict]) -> str:
    lines = [
        f"Pages at {JOBS:,} jobs, {SUBTASKS:,} subtasks, {CALLS:,} LLM calls, "
        f"{VERSIONS:,} state versions (server time, Django test client).",
        "",
        "| page | p50 ms | p95 ms | queries | target met |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = "yes" if r["met"] else "no"
        if r["status"] != 200:
            verdict = f"no (HTTP {r['status']})"
        lines.append(
            f"| {r['page']} | {r['p50_ms']} | {r['p95_ms']} | {r['queries']} | "
            f"{verdict} (≤ {r['target_ms']} ms) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
