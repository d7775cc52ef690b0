"""Chaos: the same workload without faults, then with workers killed, the broker flushed and
PostgreSQL restarted mid-run. What `make chaos` runs.

Production mode: 2 `celery worker` processes (threads pool, 8 threads each) on PostgreSQL +
Redis, the project's simulator at 200 ms, 200 jobs (plan + 3 subtasks + synthesis), at most
10 calls in flight. The faulted run, timed from the first submission:

- every 3 s from 3 s on, 10 times: SIGKILL of a random worker, a new one started at once;
- at 12 s: FLUSHDB of the broker's Redis DB (queued messages, limiter slots and live
  batches are lost: what a Redis restart without persistence does);
- at 25 s: PostgreSQL restarted (`pg_ctlcluster ... restart`: every connection dropped).

Then the host-loss scenario (bench/host_loss.py): a worker running as another host is
SIGKILLed, so only its leases lapsing can tell; its steps must resume on the surviving worker
within LEASE_S + RECONCILE_EVERY_S + 2 s, nothing paid twice, its limiter slots freed.

For both runs it prints jobs by status, jobs not terminal, subtasks (and steps) with more
than one successful provider call (from the database, and from the simulator: distinct
requests it answered more than once), the peak of calls in flight at the provider against
the cap (apart: the Redis-loss window, LOSS_WINDOW_S from the flush), the wall time, and the
faulted wall over the fault-free one. Appended to bench/RESULTS.md unless --no-record.

Usage: DATABASE_URL=postgresql://... REDIS_URL=redis://... python bench/chaos.py
       [--jobs 200] [--latency-ms 200] [--database baton_chaos] [--redis-db 8] [--no-record]
       [--scenario faults|host-loss ...] [--host-loss-jobs 40]
PostgreSQL must be this machine's (the run restarts it) and the run needs root for that.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import baton, chaos_events, chaos_timeline, host_loss, report, simulator  # noqa: E402

ROOT = baton.ROOT
LOGS = ROOT / "var" / "bench" / "chaos"
WORKERS, CAP = 2, baton.CAP
KILLS, KILL_EVERY_S = 10, 3.0
FLUSH_AT_S, PG_RESTART_AT_S = 12.0, 25.0
# After a Redis loss, slots come back at their holders' next renewal (limiter.RENEW_S) and
# calls started in between end within one call: the window the cap may be overshot in.
LOSS_WINDOW_S = 2.0
RUN_TIMEOUT_S = 600
TERMINAL = ("completed", "failed", "cancelled")
SCENARIOS = ("faults", "host-loss")


class Workers:
    """The worker processes; killed ones are replaced by new ones with new names."""

    def __init__(self, env: dict, logs: Path) -> None:
        self.env, self.logs, self.started, self.live = env, logs, 0, []

    def start(self) -> None:
        n = self.started
        self.started += 1
        cmd = host_loss.worker_cmd(f"chaos{n}")
        self.live.append(simulator.spawn(cmd, self.env, self.logs / f"worker{n}.log"))

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.live)
        victim.kill()
        victim.wait()
        self.live.remove(victim)
        self.start()

    def stop(self) -> None:
        simulator.stop(self.live)


def _pg_restart() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )


def _faults(workers: Workers, env: dict, sim: simulator.Simulator, t0: float, log: list) -> None:
    """The fault schedule, in time order, from t0; each fault noted in `log`."""
    import httpx
    import redis

    rng = random.Random(7)
    plan = [(KILL_EVERY_S * (i + 1), "kill") for i in range(KILLS)]
    plan += [(FLUSH_AT_S, "flush")]
    if PG_RESTART_AT_S is not None:
        plan += [(PG_RESTART_AT_S, "pg restart")]
    plan += [(FLUSH_AT_S + LOSS_WINDOW_S, "window end")]
    for at, fault in sorted(plan):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        if fault == "kill":
            workers.kill_one(rng)
        elif fault == "flush":
            # The peak so far is outside the window; then the window's own peak.
            log.append(("peak before flush", sim.stats()["peak_in_flight"]))
            httpx.post(f"{sim.base_url}/stats/reset?only=peak", timeout=10)
            redis.Redis.from_url(env["REDIS_URL"]).flushdb()
        elif fault == "window end":
            log.append(("peak in loss window", sim.stats()["peak_in_flight"]))
            httpx.post(f"{sim.base_url}/stats/reset?only=peak", timeout=10)
        else:
            # In its own thread: the restart takes seconds, the kills keep their schedule.
            threading.Thread(target=_pg_restart).start()
        log.append((fault, round(time.monotonic() - t0, 1)))


def _wait_for_workers(env: dict, timeout: float = 60) -> None:
    """Until every worker answers the roll call (agents.leases): both walls time the work,
    not the workers' start-up."""
    import redis

    from agents import leases

    client = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while client.hlen(leases.ROLL_KEY) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)


def _wait_until_terminal(jobs: int) -> None:
    from django.db import close_old_connections

    from agents.models import Job

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if Job.objects.filter(status__in=TERMINAL).count() >= jobs:
                return
        except Exception:  # PostgreSQL restarting under this process too
            close_old_connections()
        time.sleep(0.2)


def _paid_twice() -> dict:
    """Steps with more than one successful provider call, from Baton's own records."""
    from django.db.models import Count

    from agents.models import LLMCall

    ok = LLMCall.objects.filter(http_status=200, error="")
    subtasks = ok.exclude(subtask=None).values("subtask").annotate(n=Count("id"))
    steps = ok.filter(subtask=None).values("job", "purpose").annotate(n=Count("id"))
    # A plan's repair round-trip is a second call on purpose, not a payment twice.
    steps = steps.exclude(purpose="plan")
    return {
        "subtasks": subtasks.filter(n__gt=1).count(),
        "syntheses": steps.filter(n__gt=1).count(),
    }


def _ended(started: float, t0: float) -> dict[int, float]:
    """Every terminal job's id → its end on this process's monotonic clock."""
    from agents.models import Job

    ended = Job.objects.filter(status__in=TERMINAL).values_list("pk", "finished_at")
    return {pk: t0 + (at.timestamp() - started) for pk, at in ended if at is not None}


def run(jobs: int, latency_ms: int, env: dict, faulted: bool, events: bool = True) -> dict:
    from agents import actions
    from agents.models import Job

    logs = LOGS / ("faulted" if faulted else "fault-free")
    logs.mkdir(parents=True, exist_ok=True)
    baton._reset_state(env)
    sim = simulator.start(latency_ms, env, logs / "simulator.log")
    env = {**env, "LLM_BASE_URL": sim.base_url}
    # The subscribers first: every worker then sees the endpoint and the open stream.
    subscribers = sampler = None
    workers = Workers(env, logs)
    faults: list = []
    try:
        if events:
            subscribers = chaos_events.Subscribers(env, logs)
        for _ in range(WORKERS):
            workers.start()
        _wait_for_workers(env)
        sim.reset()
        t0, started = time.monotonic(), time.time()
        sampler = chaos_timeline.Sampler(sim, t0)
        chaos = None
        if faulted:
            chaos = threading.Thread(target=_faults, args=(workers, env, sim, t0, faults))
            chaos.start()
        for i in range(jobs):
            title, description = baton.job_text(i)
            actions.submit_job(title=title, description=description)
        _wait_until_terminal(jobs)
        if chaos is not None:
            chaos.join()
        stats = sim.stats()
        sampler.stop()
        from django.db import close_old_connections

        close_old_connections()
        load = os.getloadavg()[0]
        delivered = None
        if subscribers is not None:
            ended = _ended(started, t0)
            waited = subscribers.wait(set(ended))
            flush_at = FLUSH_AT_S if faulted else None
            delivered = {**subscribers.figures(ended, t0, flush_at), "waited_s": waited}
        timeline = chaos_timeline.seconds(sampler, started)
        statuses = Counter(Job.objects.values_list("status", flat=True))
        last = max(Job.objects.exclude(finished_at=None).values_list("finished_at", flat=True))
        peaks = dict(f for f in faults if f[0].startswith("peak"))
        outside = max([stats["peak_in_flight"], peaks.get("peak before flush", 0)])
        return {
            "faulted": faulted,
            "jobs": jobs,
            "statuses": dict(statuses),
            "not_terminal": sum(n for s, n in statuses.items() if s not in TERMINAL),
            "paid_twice_db": _paid_twice(),
            "answered_twice": stats["answered_twice"],
            "requests": stats["requests"],
            "peak_outside_window": outside,
            "peak_in_window": peaks.get("peak in loss window"),
            "wall_s": last.timestamp() - started,
            "faults": [f for f in faults if not f[0].startswith("peak")],
            "workers_started": workers.started,
            "events": delivered,
            "load_avg_1m": load,
            "timeline": timeline,
        }
    finally:
        if sampler is not None:
            sampler.stop()
        workers.stop()
        if subscribers is not None:
            subscribers.stop()
        sim.stop()


def section(runs: list[dict], latency_ms: int) -> str:
    free, faulted = runs
    lines = [
        f"### {datetime.now():%Y-%m-%d %H:%M} · commit {report.commit()} · {report.machine()}"
        f" · chaos, {free['jobs']} jobs at {latency_ms} ms, cap {CAP}",
        "",
        "| run | jobs by status | not terminal | paid twice (records / provider) "
        "| peak in flight (cap) | wall | events delivered (distinct jobs) | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        paid = sum(r["paid_twice_db"].values())
        window = (
            f"; {r['peak_in_window']} in the {LOSS_WINDOW_S:g} s after the flush"
            if r["peak_in_window"] is not None
            else ""
        )
        lines.append(
            f"| {'faulted' if r['faulted'] else 'fault-free'} | {r['statuses']} "
            f"| {r['not_terminal']} | {paid} / {r['answered_twice']} "
            f"| {r['peak_outside_window']} ({CAP}){window} | {r['wall_s']:.1f} s "
            f"| {chaos_events.cell(r.get('events'), r['jobs'])} | {r['load_avg_1m']:.1f} |"
        )
    lines += [
        "",
        f"Faulted wall / fault-free wall: **{faulted['wall_s'] / free['wall_s']:.2f}×**. "
        f"Faults (s from the first submission): {faulted['faults']}; "
        f"{faulted['workers_started']} workers started in all.",
    ]
    if faulted.get("events"):
        sse = faulted["events"]["sse"]
        lines += [
            "",
            f"Faulted run's SSE client: {sse['connects']} connections, resyncs at "
            f"{sse['resyncs']} s, disconnected {sse['gaps']} s, {sse['errors']}; "
            f"subscribers waited {faulted['events']['waited_s']:.0f} s after the last job.",
        ]
    for r in runs:
        idle = chaos_timeline.lost_seconds(r["timeline"], CAP)
        name = "faulted" if r["faulted"] else "fault-free"
        lines += [
            "",
            f"<details><summary>{name}: calls per second ({idle:.1f} s of the cap left idle"
            + (
                "; in flight in the 3 s after each fault: "
                + ", ".join(chaos_timeline.after_faults(r["timeline"], r["faults"], CAP))
                if r["faults"]
                else ""
            )
            + ")</summary>\n",
            chaos_timeline.table(r["timeline"], r["faults"], CAP),
            "\n</details>",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--database", default="baton_chaos", help="created afresh")
    parser.add_argument("--redis-db", type=int, default=8, help="flushed")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--pg-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restart PostgreSQL mid-run (--no-pg-restart where others use it)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only these (repeatable); default: all. faults restarts PostgreSQL",
    )
    parser.add_argument("--host-loss-jobs", type=int, default=40)
    parser.add_argument(
        "--events",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a webhook endpoint and an SSE client count the events delivered",
    )
    args = parser.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    base_db, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not base_db.startswith("postgres") or not redis_url:
        sys.exit("chaos needs DATABASE_URL=postgresql://... and REDIS_URL=redis://...")
    env = baton.bench_env(base_db, redis_url, args.database, args.redis_db)
    # The run's webhook receiver listens on 127.0.0.1.
    env |= {"WEBHOOK_ALLOW_PRIVATE": "true", "SSE_KEEPALIVE_S": chaos_events.KEEPALIVE_S}
    baton.create_database(env)
    baton.setup_django(env)
    global PG_RESTART_AT_S
    if not args.pg_restart:
        PG_RESTART_AT_S = None
    texts = []
    if "faults" in scenarios:
        runs = []
        for faulted in (False, True):
            runs.append(run(args.jobs, args.latency_ms, env, faulted, args.events))
            print({k: v for k, v in runs[-1].items() if k != "timeline"}, flush=True)
        texts.append(section(runs, args.latency_ms))
    if "host-loss" in scenarios:
        lost = host_loss.run(
            args.host_loss_jobs,
            args.latency_ms,
            env,
            LOGS / "host-loss",
            _wait_until_terminal,
            _paid_twice,
        )
        print(lost, flush=True)
        texts.append(host_loss.section(lost, args.latency_ms, CAP))
    text = "\n\n".join(texts)
    if "faults" not in scenarios:
        heading = f"### {datetime.now():%Y-%m-%d %H:%M} · commit {report.commit()} · "
        text = f"{heading}{report.machine()} · chaos, {', '.join(scenarios)} only\n\n{text}"
    print("\n" + text + "\n")
    if args.record:
        report.record(text)
        print(f"recorded in {report.RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
