"""Baton in production mode: Daphne and Celery workers on PostgreSQL + Redis, as real processes.

Every process is started through bench/counted.py, which counts its SQL statements and
broker messages. Jobs are submitted from this process with `actions.submit_job`, as the
board's form does, and the counters of this process are read around the submission.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench import board_clients, job_pages, procstat, simulator
from bench.counted import KINDS, Counts

ROOT = Path(__file__).resolve().parent.parent
PYTHON = simulator.PYTHON
WORKERS, THREADS = 2, 8
CAP = 10  # LLM calls in flight at most, every system alike
WORKER = (
    "celery -A orchestrator_site worker --pool threads --without-gossip --without-mingle "
    "--loglevel WARNING"
).split()
DAPHNE = "daphne -b 127.0.0.1".split()
BENCH_DB, BENCH_REDIS_DB = "baton_bench", 3
BENCH_USER = "bench"
RUN_TIMEOUT_S = 900
# Time the board clients get, once every job ended, to receive the last fragments.
BOARD_GRACE_S = 3.0


def job_text(i: int) -> tuple[str, str]:
    return f"bench {i}", f"Benchmark job number {i}."


def _with_path(url: str, path: str) -> str:
    return urlsplit(url)._replace(path=path).geturl()


def database_name(env: dict) -> str:
    return urlsplit(env["DATABASE_URL"]).path.lstrip("/")


def bench_env(
    database_url: str, redis_url: str, database: str = BENCH_DB, redis_db: int = BENCH_REDIS_DB
) -> dict:
    """The environment of every Baton process: the bench's own database and Redis DB."""
    return {
        **os.environ,
        "DATABASE_URL": _with_path(database_url, f"/{database}"),
        "REDIS_URL": _with_path(redis_url, f"/{redis_db}"),
        "LLM_API_KEY": simulator.API_KEY,
        "LLM_MAX_CONCURRENCY": str(CAP),
        "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def create_database(env: dict) -> None:
    """A fresh database, unless another bench is using it (it would break that run)."""
    admin, name = _with_path(env["DATABASE_URL"], "/postgres"), database_name(env)
    users = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"
    busy = subprocess.run(
        ["psql", admin, "-Atc", users], check=True, capture_output=True, text=True
    )
    if int(busy.stdout.strip() or 0):
        sys.exit(
            f"{busy.stdout.strip()} sessions use the database {name}: another bench is running? "
            "Wait for it, or give this one its own: --database NAME --redis-db N."
        )
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", admin, "-qc", sql], check=True)
    # The bench measures the hot path with tools off.
    for command in (["migrate", "--noinput"], ["seed_agents", "--no-tools"]):
        subprocess.run(
            [PYTHON, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def setup_django(env: dict) -> Counts:
    """Configure Django in this process for the bench database; count what it sends."""
    from bench.counted import install

    os.environ.update(env)
    counts = install()
    import django

    django.setup()
    return counts


def _reset_state(env: dict) -> None:
    """A clean slate for each run: no jobs, no sessions, no queued messages or watchers."""
    import redis
    from django.db import connection

    from agents.models import Job

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Job._meta.db_table}, django_session CASCADE")
        # Autovacuum may be off: the dead rows of agents' counters would slow later runs.
        cursor.execute("VACUUM ANALYZE")


def _sessions(n: int) -> list[str]:
    """n logged-in sessions of one operator, as n browsers would hold after logging in."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    user = User.objects.filter(username=BENCH_USER).first()
    if user is None:
        user = User.objects.create_superuser(BENCH_USER, password="bench-only-password")
    keys = []
    for _ in range(n):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
    return keys


def _counted(counts_file: Path, program: list[str], env: dict, log: Path) -> subprocess.Popen:
    counts_file.unlink(missing_ok=True)
    counts_file.with_name(counts_file.name + ".ready").unlink(missing_ok=True)
    cmd = [PYTHON, str(ROOT / "bench" / "counted.py"), str(counts_file), *program]
    return simulator.spawn(cmd, env, log)


def _start_processes(env: dict, logs: Path, web_port: int) -> tuple[list, subprocess.Popen]:
    import httpx

    daphne = [*DAPHNE, "-p", str(web_port), "orchestrator_site.asgi:application"]
    web = _counted(logs / "counts-web.json", daphne, env, logs / "web.log")
    workers = []
    for n in range(WORKERS):
        worker = [*WORKER, "--concurrency", str(THREADS), "-n", f"bench{n}@%h"]
        log = logs / f"worker{n}.log"
        workers.append(_counted(logs / f"counts-worker{n}.json", worker, env, log))

    def serving() -> bool:
        return httpx.get(f"http://127.0.0.1:{web_port}/login/", timeout=2).status_code == 200

    simulator.wait_for(serving, "daphne", web, logs / "web.log")
    for n, proc in enumerate(workers):
        ready = logs / f"counts-worker{n}.json.ready"
        simulator.wait_for(ready.exists, f"worker {n}", proc, logs / f"worker{n}.log")
    return workers, web


def _read_counts(logs: Path, submitted: dict[str, int]) -> dict:
    """Totals of every kind, and each source's: workers, web (Daphne) and submit."""
    by_source = {"workers": dict.fromkeys(KINDS, 0), "web": {}, "submit": submitted}
    files = [("web", logs / "counts-web.json")]
    files += [("workers", logs / f"counts-worker{n}.json") for n in range(WORKERS)]
    for source, path in files:
        if not path.exists():
            print(f"warning: {path.name} missing: that process's counts are lost", file=sys.stderr)
            continue
        for kind, n in json.loads(path.read_text()).items():
            by_source[source][kind] = by_source[source].get(kind, 0) + n
    totals = {kind: sum(c.get(kind, 0) for c in by_source.values()) for kind in KINDS}
    return {**totals, "counts_by_source": by_source}


def _wait_until_terminal(jobs: int) -> None:
    from agents.models import Job

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while Job.objects.filter(status__in=board_clients.TERMINAL).count() < jobs:
        if time.monotonic() > deadline:
            print(f"warning: jobs still open after {RUN_TIMEOUT_S} s", file=sys.stderr)
            return
        time.sleep(0.1)


def _check_workload(workload: dict | None) -> None:
    """Warn when Baton's requests for one job differ from what the peers send, or its plans
    from the workload's shape (3 subtasks, one dependency)."""
    from agents.models import LLMCall, Subtask
    from bench.peers import common

    if not workload:
        return
    job = workload["jobs"][0]
    calls = {
        (c.purpose, c.subtask and c.subtask.key): c
        for c in LLMCall.objects.filter(job__title=job["title"]).select_related("subtask")
    }
    expected = {("plan", None): job["plan_messages"]}
    if ("plan", None) in calls:
        plan = common.parse_plan(calls[("plan", None)].response)
        by_id = {s["id"]: s for s in plan}
        done = {c[1]: calls[c].response for c in calls if c[0] == "subtask"}
        for sub in plan:
            agent = common.agent_for(workload, sub)
            upstream = [(by_id[d], done.get(d, "")) for d in sub["depends_on"]]
            messages = common.subtask_messages(workload, job, sub, agent, upstream)
            expected[("subtask", sub["id"])] = messages
        results = [(sub, done.get(sub["id"], "")) for sub in plan]
        expected[("synthesis", None)] = common.synthesis_messages(workload, job, results)
    differ = [
        k for k, messages in expected.items() if k not in calls or calls[k].messages != messages
    ]
    if differ:
        print(
            f"warning: Baton's requests differ from the peers' ones for {differ}", file=sys.stderr
        )
    edges = Subtask.depends_on.through.objects.count()
    jobs = Subtask.objects.values("job").distinct().count()
    if edges != jobs or Subtask.objects.count() != 3 * jobs:
        print(
            f"warning: plans are not 3 subtasks and one dependency ({edges} edges)",
            file=sys.stderr,
        )


def run(
    *,
    jobs: int,
    latency_ms: int,
    watchers: int,
    env: dict,
    counts: Counts,
    logs: Path,
    postmaster: int | None,
    redis_pid: int | None,
    workload: dict | None = None,
    pages: int = 0,
) -> dict:
    from agents import actions
    from agents.models import Job, LLMCall

    logs.mkdir(parents=True, exist_ok=True)
    _reset_state(env)
    sim = simulator.start(latency_ms, env, logs / "simulator.log")
    env = {**env, "LLM_BASE_URL": sim.base_url}
    web_port = simulator.free_port()
    workers, web = _start_processes(env, logs, web_port)
    clients = None
    try:
        if watchers:
            clients = board_clients.start(
                PYTHON, web_port, _sessions(watchers), logs / "board.json", logs / "board.log"
            )
        followers = None
        if pages:
            followers = job_pages.start(
                PYTHON, web_port, _sessions(pages), logs / "pages.json", logs / "pages.log"
            )
        groups = {
            "workers": [w.pid for w in workers],
            "web": [web.pid],
            "redis": [redis_pid] if redis_pid else [],
            "simulator": [sim.proc.pid],
            "clients": [c.proc.pid for c in (clients, followers) if c],
        }
        meter = procstat.CpuMeter(groups, postmaster, database_name(env))
        sim.reset()
        meter.start()
        before, cpu_before, started = counts.snapshot(), time.process_time(), time.time()
        for i in range(jobs):
            title, description = job_text(i)
            job = actions.submit_job(title=title, description=description)
            if followers:
                followers.follow(job.pk)
        submit_cpu = time.process_time() - cpu_before
        after = counts.snapshot()
        _wait_until_terminal(jobs)
        # This process, less the submission: polling and sampling, not Baton's work.
        bench_cpu = time.process_time() - cpu_before - submit_cpu
        cpu = {**meter.stop(), "submit": submit_cpu, "bench": bench_cpu}
        stats = sim.stats()
        finished = {
            pk: at.timestamp()
            for pk, at in Job.objects.filter(finished_at__isnull=False).values_list(
                "pk", "finished_at"
            )
        }
        completed = Job.objects.filter(status="completed").count()
        calls = LLMCall.objects.count()
        _check_workload(workload)
        received = followed = None
        if clients:
            time.sleep(BOARD_GRACE_S)
            received = clients.stop()
        if followers:
            followed = followers.stop()
    finally:
        for c in (clients, followers):
            if c and c.proc.poll() is None:
                c.proc.kill()
        time.sleep(0.5)  # the consumers' disconnects reach Redis before Daphne stops
        simulator.stop([web, *workers])
        sim.stop()
    counted = _read_counts(logs, {kind: after[kind] - before[kind] for kind in KINDS})
    result = {
        "system": "baton",
        "watchers": watchers,
        "pages": pages,
        "latency_ms": latency_ms,
        "jobs": jobs,
        "completed": completed,
        "calls": calls,
        "simulator_requests": stats["requests"],
        "peak_in_flight": stats["peak_in_flight"],
        "wall_s": (max(finished.values()) - started) if finished else None,
        "cpu_s": cpu,
        **counted,
    }
    if received is not None:
        result["board"] = board_clients.figures(received, finished)
    if followed is not None:
        result["job_pages"] = followed
    return result
