"""Orchestration overhead on top of LLM latency, measured against real processes.

Two Celery worker processes (threads pool, 8 threads each) on PostgreSQL + Redis, the LLM
simulator over HTTP. Each job is plan + 3 subtasks + synthesis = 5 calls. Two figures:

- efficiency at 200 ms latency and cap 10: ideal wall = calls × latency / cap; efficiency =
  ideal / measured wall (1.0 would be a perfectly LLM-bound system);
- calls per second at 0 ms latency: pure orchestration throughput.

Usage: DATABASE_URL=postgresql://... REDIS_URL=redis://... python bench/run.py [--jobs 200]
It creates and drops its own database `baton_bench`, and purges its Redis DB's queue.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CALLS_PER_JOB = 5


def sh(*cmd: str, env: dict) -> None:
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def run(
    jobs: int, latency_ms: int, cap: int, workers: int, env: dict, logs: Path, concurrency: int
) -> dict:
    import httpx

    env = {**env, "LLM_MAX_CONCURRENCY": str(cap)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        sim_port = s.getsockname()[1]
    env["LLM_BASE_URL"] = f"http://127.0.0.1:{sim_port}/v1"
    procs = [
        subprocess.Popen(
            [str(BIN / "python"), "manage.py", "llm_simulator", "--port", str(sim_port),
             "--latency-ms", str(latency_ms)],
            cwd=ROOT, env=env, stdout=(logs / "sim.log").open("w"), stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    for n in range(workers):
        log = logs / f"worker{n}.log"
        procs.append(
            subprocess.Popen(
                [str(BIN / "celery"), "-A", "orchestrator_site", "worker", "--pool", "threads",
                 "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
                 "--loglevel", "WARNING", "-n", f"bench{n}@%h"],
                cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        time.sleep(5)
        os.environ.update(env)
        import django

        django.setup()
        from django.db import connection

        from agents import actions
        from agents.models import Job, LLMCall

        httpx.post(f"http://127.0.0.1:{sim_port}/stats/reset")
        Job.objects.all().delete()
        start = time.monotonic()
        for i in range(jobs):
            actions.submit_job(title=f"bench {i}", description=f"Benchmark job number {i}.")
        while Job.objects.exclude(status__in=["completed", "failed", "cancelled"]).exists():
            time.sleep(0.05)
        wall = time.monotonic() - start
        stats = httpx.get(f"http://127.0.0.1:{sim_port}/stats").json()
        calls = LLMCall.objects.count()
        failed = Job.objects.exclude(status="completed").count()
        connection.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    ideal = calls * latency_ms / 1000 / cap
    return {
        "jobs": jobs, "failed": failed, "calls": calls, "latency_ms": latency_ms, "cap": cap,
        "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
        "efficiency": round(ideal / wall, 3) if ideal else None,
        "calls_per_s": round(calls / wall, 1), "peak_in_flight": stats["peak_in_flight"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    args = parser.parse_args()
    base_db = os.environ.get("DATABASE_URL", "")
    redis = os.environ.get("REDIS_URL", "")
    if not base_db.startswith("postgres") or not redis:
        sys.exit("bench needs DATABASE_URL=postgresql://... and REDIS_URL=redis://...")
    db_url = base_db.rsplit("/", 1)[0] + "/baton_bench"
    env = {
        **os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis.rsplit("/", 1)[0] + "/3",
        "LLM_API_KEY": "sk-bench", "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
        "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    admin = base_db.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qc", "DROP DATABASE IF EXISTS baton_bench"], check=True)
    subprocess.run(["psql", admin, "-qc", "CREATE DATABASE baton_bench"], check=True)
    sh(str(BIN / "python"), "manage.py", "migrate", "--noinput", env=env)
    sh(str(BIN / "python"), "manage.py", "seed_agents", env=env)
    subprocess.run([str(BIN / "celery"), "-A", "orchestrator_site", "purge", "-f"], cwd=ROOT,
                   env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    results = [
        run(args.jobs, 200, 10, args.workers, env, logs, args.concurrency),
        run(args.jobs, 0, 10, args.workers, env, logs, args.concurrency),
    ]
    for r in results:
        print(r)


if __name__ == "__main__":
    main()
