"""An experiment beside live work: a 50-case experiment at 200 ms provider latency on Baton
in production mode (2 Celery workers, Daphne, PostgreSQL + Redis), and a job an operator
submits while it runs.

What it shows (issue 17): the experiment holds the provider cap (the simulator's peak of
calls in flight never passes it), and a job submitted during it is not held back: its
subtasks are queued in the dispatch pass that follows their becoming runnable (no
experiment subtask is queued while one of them waits), and its time to finish is set
beside the same job's on the idle stack, measured first in the same run.

Usage: DATABASE_URL=postgresql://... REDIS_URL=redis://... python bench/experiment.py
       [--cases 50] [--latency 200] [--concurrency 4] [--record]
It creates its own database `baton_experiment` afresh and flushes its Redis DB 5.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # run as a script: import bench.* from the project root

from bench import baton, report, simulator  # noqa: E402

LOGS = ROOT / "var" / "bench" / "experiment"
DATABASE, REDIS_DB = "baton_experiment", 5
TIMEOUT_S = 900
LIVE = ("live job", "An operator's job, submitted while the experiment runs.")


def _wait(condition, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _live_job() -> dict:
    """Submit the operator's job, wait for its end; how long each of its steps waited."""
    from agents import actions
    from agents.models import JOB_TERMINAL, Job

    job = actions.submit_job(title=LIVE[0], description=LIVE[1])
    _wait(lambda: Job.objects.get(pk=job.pk).status in JOB_TERMINAL, "the live job")
    job.refresh_from_db()
    subtasks = list(job.subtasks.prefetch_related("depends_on").order_by("pk"))
    waits = []
    for sub in subtasks:
        upstream = [d.finished_at for d in sub.depends_on.all()]
        runnable = max(upstream) if upstream else job.planned_at
        waits.append((sub.started_at - runnable).total_seconds())
    first = min(s.started_at for s in subtasks)
    return {
        "job": job,
        "status": job.status,
        "wall_s": (job.finished_at - job.created_at).total_seconds(),
        "to_plan_s": (job.planned_at - job.created_at).total_seconds(),
        "to_first_step_s": (first - job.created_at).total_seconds(),
        "step_waits_s": waits,
    }


def _dataset(cases: int):
    from agents import scoring
    from agents.models import Case, Dataset, Scorer

    dataset = Dataset.objects.create(name="bench", slug="bench")
    Case.objects.bulk_create(
        Case(
            dataset=dataset,
            title=f"case {i}",
            description=f"Benchmark case number {i}.",
            expected=f"case number {i}",
        )
        for i in range(cases)
    )
    # The two seed_agents makes: an LLM judge and a not-empty check.
    scoring.ensure_default_scorers()
    scorers = list(Scorer.objects.filter(slug__in=("llm-judge-helpfulness", "not-empty")))
    return dataset, scorers


def run(args: argparse.Namespace, env: dict) -> dict:
    from agents import experiment_reports, experiments
    from agents.models import Experiment, ExperimentStatus, LLMCall, Subtask

    LOGS.mkdir(parents=True, exist_ok=True)
    baton._reset_state(env)
    sim = simulator.start(args.latency, env, LOGS / "simulator.log")
    env = {**env, "LLM_BASE_URL": sim.base_url}
    workers, web = baton._start_processes(env, LOGS, simulator.free_port())
    try:
        idle = _live_job()
        dataset, scorers = _dataset(args.cases)
        sim.reset()
        started = time.time()
        experiment = experiments.start(
            dataset=dataset,
            name="bench",
            scorers=scorers,
            agent_versions={},
            budget_tokens=None,
            budget_cost=None,
            concurrency=args.concurrency,
            actor=None,
        )
        time.sleep(args.submit_after)
        beside = _live_job()
        live_job = beside.pop("job")
        idle.pop("job")

        def ended() -> bool:
            return Experiment.objects.get(pk=experiment.pk).status != ExperimentStatus.RUNNING

        _wait(ended, "the experiment")
        experiment.refresh_from_db()
        stats = sim.stats()
        ours = Subtask.objects.filter(job__experiment_case__experiment=experiment)
        # Experiment steps queued while one of the live job's steps was runnable and waited.
        overtaking = 0
        for sub in live_job.subtasks.prefetch_related("depends_on"):
            upstream = [d.finished_at for d in sub.depends_on.all()]
            runnable = max(upstream) if upstream else live_job.planned_at
            overtaking += ours.filter(
                started_at__gt=runnable, started_at__lt=sub.started_at
            ).count()
        cases = experiment.cases.exclude(job=None)
        last = max(c.job.finished_at for c in cases.select_related("job") if c.job.finished_at)
        calls = LLMCall.objects.filter(job__experiment_case__experiment=experiment).count()
        summary = experiment_reports.summary(experiment)
    finally:
        simulator.stop([web, *workers])
        sim.stop()
    wall = last.timestamp() - started
    ideal = calls * args.latency / 1000 / baton.CAP
    return {
        "cases": args.cases,
        "latency_ms": args.latency,
        "cap": baton.CAP,
        "concurrency": args.concurrency,
        "status": experiment.status,
        "scored": summary["scored"],
        "calls": calls,
        "wall_s": wall,
        "efficiency": ideal / wall if wall else None,
        "peak_in_flight": stats["peak_in_flight"],
        "idle": idle,
        "beside": beside,
        "overtaking": overtaking,
        "scorers": [
            {k: s[k] for k in ("name", "n", "mean", "ci_low", "ci_high", "pass_rate")}
            for s in summary["scorers"]
        ],
    }


def section(r: dict) -> str:
    def waits(run: dict) -> str:
        values = run["step_waits_s"]
        return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    rows = [
        f"### Experiment beside live work ({datetime.date.today()}, {commit})",
        "",
        f"`python bench/experiment.py`: {r['cases']} cases × (plan + 3 subtasks + synthesis "
        f"+ a judge call), provider latency {r['latency_ms']} ms, cap {r['cap']}, "
        f"{r['concurrency']} cases in flight; an LLM judge and a length scorer.",
        "",
        "| experiment | calls | wall | efficiency | peak in flight (cap) | scored |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {r['status']} | {r['calls']} | {r['wall_s']:.1f} s | {r['efficiency']:.3f} | "
        f"{r['peak_in_flight']} ({r['cap']}) | {r['scored']}/{r['cases']} |",
        "",
        "| live job | to plan | to first step | whole job | step waits, median / max (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, run in (("on the idle stack", r["idle"]), ("during the experiment", r["beside"])):
        rows.append(
            f"| {name} | {run['to_plan_s']:.2f} s | {run['to_first_step_s']:.2f} s | "
            f"{run['wall_s']:.2f} s | {waits(run)} |"
        )
    rows += [
        "",
        "Experiment subtasks claimed while a live step was runnable and not yet claimed (one "
        "queued in the same dispatch pass and claimed a moment earlier by another thread "
        f"counts too): **{r['overtaking']}**.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--latency", type=int, default=200, help="provider latency, ms")
    parser.add_argument("--concurrency", type=int, default=4, help="cases in flight")
    parser.add_argument("--submit-after", type=float, default=5.0, help="seconds")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    base_db, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not base_db.startswith("postgres") or not redis_url:
        sys.exit("bench needs DATABASE_URL=postgresql://... and REDIS_URL=redis://...")
    env = baton.bench_env(base_db, redis_url, DATABASE, REDIS_DB)
    baton.setup_django(env)
    baton.create_database(env)
    result = run(args, env)
    (LOGS / "result.json").write_text(json.dumps(result, indent=1, default=str))
    text = section(result)
    print("\n" + text + "\n")
    if args.record:
        report.record(text)
        print(f"recorded in {report.RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
