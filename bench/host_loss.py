"""Host loss: a worker on another machine vanishes, so only its leases can tell.

One worker runs as another host (`unshare --uts` with its own hostname: its leases, slots and
roll-call entry name that host, and the reconciler checks /proc only for holders of its own
host), one runs here. Mid-run the other host's worker is SIGKILLed, all its threads at once.
Its steps must be claimed again by the surviving worker within LEASE_S + RECONCILE_EVERY_S
+ 2 s, nothing paid twice, and its limiter slots freed (they lapse LEASE_S after their last
renewal). Needs root (a UTS namespace) and PostgreSQL + Redis; touches only the run's own
database and Redis DB.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from bench import baton, simulator

LOST_HOST = "baton-lost-host"
KILL_AT_S = 4.0
POLL_S = 0.1
THREADS = 8


def worker_cmd(name: str) -> list[str]:
    """A `celery worker` of the bench: threads pool, no gossip or mingle."""
    return [
        simulator.PYTHON,
        "-m",
        "celery",
        "-A",
        "orchestrator_site",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(THREADS),
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
        "-n",
        f"{name}@%h",
    ]


def start_workers(env: dict, logs: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    """(the survivor, here; the worker on the other host). `exec` keeps the worker's pid the
    one SIGKILL reaches."""
    survivor = simulator.spawn(worker_cmd("survivor"), env, logs / "survivor.log")
    inner = " ".join(worker_cmd("lost"))
    lost = simulator.spawn(
        ["unshare", "--uts", "sh", "-c", f"hostname {LOST_HOST} && exec {inner}"],
        env,
        logs / "lost.log",
    )
    return survivor, lost


def holder_of(env: dict, timeout: float = 60) -> str:
    """The lost host's worker, as its leases name it: from the roll call once it answers."""
    import redis

    from agents import leases

    client = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = [h.decode() for h in client.hkeys(leases.ROLL_KEY)]
        theirs = [h for h in names if h.startswith(LOST_HOST + ":")]
        if theirs and len(names) >= 2:
            return theirs[0]
        time.sleep(0.1)
    raise RuntimeError("the workers did not answer the roll call")


def held_steps(holder: str) -> set[tuple[str, int]]:
    from agents.models import Job, JobStatus, Subtask, SubtaskStatus

    jobs = Job.objects.filter(
        lease_owner=holder,
        status__in=(JobStatus.PLANNING, JobStatus.SYNTHESIZING),
        claimed_at__isnull=False,
    )
    subtasks = Subtask.objects.filter(lease_owner=holder, status=SubtaskStatus.WORKING)
    return {("job", pk) for pk in jobs.values_list("pk", flat=True)} | {
        ("subtask", pk) for pk in subtasks.values_list("pk", flat=True)
    }


def held_slots(env: dict, holder: str) -> int:
    import redis

    from agents import limiter

    members = redis.Redis.from_url(env["REDIS_URL"]).zrange(limiter.slots_key(), 0, -1)
    return sum(1 for m in members if m.decode().startswith(holder + "|"))


class Watch:
    """From the kill on: when each step the dead worker held is claimed by another worker,
    and when the last of its slots is gone from the limiter."""

    def __init__(self, env: dict, holder: str, steps: set, killed_at: float) -> None:
        self.env, self.holder, self.killed_at = env, holder, killed_at
        self.pending, self.resumed = set(steps), {}
        self.slots_freed_s: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.db import connection

        from agents.models import Job, Subtask

        models = {"job": Job, "subtask": Subtask}
        # Where a step the dead worker held can stand until another worker claims it.
        open_ = {"job": ("planning", "synthesizing", "queued"), "subtask": ("working", "queued")}
        while not self.done.is_set() and (self.pending or self.slots_freed_s is None):
            now = time.monotonic() - self.killed_at
            for kind, pk in list(self.pending):
                row = models[kind].objects.filter(pk=pk).values_list("lease_owner", "status")
                owner, status = row[0] if row else ("", "")
                if owner not in ("", self.holder):
                    self.resumed[(kind, pk)] = now
                    self.pending.discard((kind, pk))
                elif owner == self.holder and status not in open_[kind]:
                    self.pending.discard((kind, pk))  # it ended in the moment before the kill
            if self.slots_freed_s is None and not held_slots(self.env, self.holder):
                self.slots_freed_s = now
            time.sleep(POLL_S)
        connection.close()  # this thread's own

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def run(jobs: int, latency_ms: int, env: dict, logs: Path, wait_until_terminal, paid) -> dict:
    """One host-loss run; `wait_until_terminal` and `paid` are chaos.py's."""
    from django.conf import settings
    from django.db import close_old_connections

    from agents import actions
    from agents.models import Job

    logs.mkdir(parents=True, exist_ok=True)
    baton._reset_state(env)
    sim = simulator.start(latency_ms, env, logs / "simulator.log")
    env = {**env, "LLM_BASE_URL": sim.base_url}
    survivor, lost = start_workers(env, logs)
    try:
        holder = holder_of(env)
        sim.reset()
        t0, started = time.monotonic(), time.time()
        for i in range(jobs):
            title, description = baton.job_text(i)
            actions.submit_job(title=title, description=description)
        time.sleep(max(0.0, t0 + KILL_AT_S - time.monotonic()))
        steps, slots = held_steps(holder), held_slots(env, holder)
        lost.kill()  # SIGKILL: every thread at once, nothing released
        killed_at = time.monotonic()
        lost.wait()
        watch = Watch(env, holder, steps, killed_at)
        wait_until_terminal(jobs)
        watch.thread.join(timeout=settings.LEASE_S * 2)
        watch.stop()
        close_old_connections()
        stats = sim.stats()
        last = max(Job.objects.exclude(finished_at=None).values_list("finished_at", flat=True))
        bound = settings.LEASE_S + settings.RECONCILE_EVERY_S + 2
        resume = max(watch.resumed.values(), default=None)
        return {
            "jobs": jobs,
            "broker": settings.CELERY_BROKER_URL.partition(":")[0],
            "statuses": dict(Counter(Job.objects.values_list("status", flat=True))),
            "steps_held_at_kill": len(steps),
            "steps_resumed": len(watch.resumed),
            "steps_ended_before_kill": len(steps) - len(watch.resumed) - len(watch.pending),
            "steps_not_resumed": sorted(watch.pending),
            "resume_s_max": resume,
            "bound_s": bound,
            "within_bound": resume is not None and resume <= bound and not watch.pending,
            "slots_held_at_kill": slots,
            "slots_freed_s": watch.slots_freed_s,
            "paid_twice_db": paid(),
            "answered_twice": stats["answered_twice"],
            "peak_in_flight": stats["peak_in_flight"],
            "wall_s": last.timestamp() - started,
        }
    finally:
        simulator.stop([survivor, lost])
        sim.stop()


def section(r: dict, latency_ms: int, cap: int) -> str:
    resume = f"{r['resume_s_max']:.1f} s" if r["resume_s_max"] is not None else "never"
    freed = f"{r['slots_freed_s']:.1f} s" if r["slots_freed_s"] is not None else "never"
    return "\n".join(
        [
            f"Host loss ({r['jobs']} jobs at {latency_ms} ms, cap {cap}, {r['broker']} broker; "
            f"a worker under "
            f"`unshare --uts` as {LOST_HOST} SIGKILLed at {KILL_AT_S:g} s): it held "
            f"{r['steps_held_at_kill']} steps ({r['steps_ended_before_kill']} ended as it "
            f"was killed) and {r['slots_held_at_kill']} limiter slots; "
            f"{r['steps_resumed']} claimed again by the survivor, the last **{resume}** after "
            f"the kill (bound LEASE_S + RECONCILE_EVERY_S + 2 = {r['bound_s']:g} s; "
            f"{'met' if r['within_bound'] else 'MISSED'}"
            + (f"; never claimed again: {r['steps_not_resumed']}" if r["steps_not_resumed"] else "")
            + f"), its slots gone after {freed}; "
            f"jobs {r['statuses']}; paid twice {sum(r['paid_twice_db'].values())} "
            f"(records) / {r['answered_twice']} (provider); peak in flight "
            f"{r['peak_in_flight']} ({cap}); wall {r['wall_s']:.1f} s.",
        ]
    )
