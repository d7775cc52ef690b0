"""Baton against its peers, side by side in one run, on the project's LLM simulator.

Workload everywhere: N jobs (200) × (plan + 3 subtasks, one depending on another +
synthesis) = 5 calls a job, at most 10 calls in flight, at 200 ms and at 0 ms provider
latency. The systems:

- Baton in production mode (2 `celery worker` processes, threads pool, 8 threads each,
  Daphne, PostgreSQL + Redis), with nobody watching, with 10 logged-in board pages, and with
  10 job pages following the jobs as they run (their subtasks' text streamed to them);
- the asyncio peer (bench/peers/asyncio_peer.py): one process, httpx, a semaphore;
- LangGraph with its SQLite checkpointer (bench/peers/langgraph_peer.py), in its own venv.

Figures: efficiency at 200 ms (ideal wall = calls × latency / cap; efficiency = ideal /
wall), calls/s at 0 ms, CPU ms per LLM call (every process of the system, from /proc; the
simulator is the provider and counted apart; for Baton, split into workers, PostgreSQL and
Redis, so one reads how many calls/s a core of each carries), Baton's SQL statements and
round trips (statements + BEGIN/COMMIT) and broker messages per call, and the board's latency
from a job's terminal commit to its pages.

Usage: DATABASE_URL=postgresql://... REDIS_URL=redis://... python bench/run.py
       [--jobs 200] [--only baton|baton-nobody|baton-boards|baton-pages|peers|asyncio|langgraph,...]
       [--latencies 200,0] [--record | --no-record] [--database baton_bench] [--redis-db 3]
       [--pages [--pages-args "..."]]
It creates its own database `baton_bench` afresh and flushes its Redis DB 3 before each run;
it refuses to start while another bench uses that database.
A full run (all systems, 200 jobs, both latencies) is appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script: import bench.* from the project root

from bench import baton, peer_runs, procstat, report  # noqa: E402

LOGS = ROOT / "var" / "bench"
SYSTEMS = ("baton-nobody", "baton-boards", "baton-pages", "asyncio", "langgraph")
GROUPS = {
    "baton": ("baton-nobody", "baton-boards", "baton-pages"),
    "peers": ("asyncio", "langgraph"),
}
CAP = baton.CAP
WATCHERS = 10


def selected(only: str | None) -> list[str]:
    if not only:
        return list(SYSTEMS)
    chosen: list[str] = []
    for name in only.split(","):
        names = GROUPS.get(name.strip(), (name.strip(),))
        for n in names:
            if n not in SYSTEMS:
                sys.exit(
                    f"--only: unknown system {n!r}; choose from {', '.join(SYSTEMS)}, "
                    f"{', '.join(GROUPS)}"
                )
            if n not in chosen:
                chosen.append(n)
    return [s for s in SYSTEMS if s in chosen]


def local_pids(env: dict) -> tuple[int | None, int | None]:
    """PostgreSQL's postmaster and redis-server, when they run on this machine."""
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        postmaster = procstat.postmaster_pid(cursor.fetchone()[0])
    redis_pid = redis.Redis.from_url(env["REDIS_URL"]).info("server").get("process_id")
    if postmaster is None:
        print("warning: PostgreSQL's postmaster not found: its CPU is left out", file=sys.stderr)
    if not redis_pid or not Path(f"/proc/{redis_pid}").exists():
        print("warning: redis-server not on this machine: its CPU is left out", file=sys.stderr)
        redis_pid = None
    return postmaster, redis_pid


def run_all(args: argparse.Namespace, systems: list[str], env: dict) -> list[dict]:
    counts = baton.setup_django(env)
    workload_file = LOGS / "workload.json"
    workload = peer_runs.write_workload(args.jobs, workload_file)
    pythons = {"asyncio": sys.executable}
    if "langgraph" in systems:
        pythons["langgraph"] = peer_runs.ensure_venv(LOGS / "peers-venv.log")
    postmaster = redis_pid = None
    if any(s.startswith("baton") for s in systems):
        baton.create_database(env)
        postmaster, redis_pid = local_pids(env)
    results = []
    for latency in args.latencies:
        for system in systems:
            logs = LOGS / f"{latency}ms-{system}"
            print(f"… {system} at {latency} ms", flush=True)
            if system.startswith("baton"):
                r = baton.run(
                    jobs=args.jobs,
                    latency_ms=latency,
                    watchers=WATCHERS if system == "baton-boards" else 0,
                    pages=WATCHERS if system == "baton-pages" else 0,
                    env=env,
                    counts=counts,
                    logs=logs,
                    postmaster=postmaster,
                    redis_pid=redis_pid,
                    workload=workload,
                )
            else:
                r = peer_runs.run(
                    system,
                    pythons[system],
                    latency_ms=latency,
                    cap=CAP,
                    env=env,
                    logs=logs,
                    workload=workload_file,
                )
            r = report.derive(r, CAP)
            (logs / "result.json").write_text(json.dumps(r, indent=1, default=str))
            print(
                f"  {r['completed']}/{r['jobs']} jobs, {r['calls']} calls in "
                f"{r['wall_s']:.2f} s: {r['calls_per_s']:.1f} calls/s, efficiency "
                f"{r['efficiency'] or 0:.3f}, {r['cpu_ms']:.1f} CPU ms/call",
                flush=True,
            )
            results.append(r)
    return results


def run_pages(extra: list[str]) -> None:
    """The pages at scale (bench/pages.py), in a process of its own."""
    subprocess.run([sys.executable, str(ROOT / "bench" / "pages.py"), *extra], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--only", help="comma-separated: " + ", ".join([*SYSTEMS, *GROUPS]))
    parser.add_argument("--latencies", default="200,0", help="provider latencies, ms")
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append to bench/RESULTS.md (default: only for a full run)",
    )
    parser.add_argument("--database", default=baton.BENCH_DB, help="created afresh, dropped first")
    parser.add_argument("--redis-db", type=int, default=baton.BENCH_REDIS_DB, help="flushed")
    parser.add_argument(
        "--pages",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the pages at scale, bench/pages.py (default: with a full run)",
    )
    parser.add_argument("--pages-args", default="", help="arguments for bench/pages.py")
    args = parser.parse_args()
    args.latencies = [int(v) for v in args.latencies.split(",")]
    systems = selected(args.only)
    base_db, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not base_db.startswith("postgres") or not redis_url:
        sys.exit("bench needs DATABASE_URL=postgresql://... and REDIS_URL=redis://...")
    LOGS.mkdir(parents=True, exist_ok=True)

    env = baton.bench_env(base_db, redis_url, args.database, args.redis_db)
    results = run_all(args, systems, env)
    section = report.section(results, args.jobs, args.latencies, CAP)
    print("\n" + section + "\n")
    full = args.jobs == 200 and systems == list(SYSTEMS) and sorted(args.latencies) == [0, 200]
    if args.record or (args.record is None and full):
        report.record(section)
        print(f"recorded in {report.RESULTS.relative_to(ROOT)}")
    else:
        print("not recorded in bench/RESULTS.md (a partial run; --record to force)")
    if args.pages or (args.pages is None and full):
        run_pages(args.pages_args.split())


if __name__ == "__main__":
    main()
