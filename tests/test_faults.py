"""Fault injection through real processes: two Celery workers on PostgreSQL + Redis, and a
simulator that answers 500s, 429s with Retry-After, and hangs.

Every job must reach a terminal state; no subtask gets a second successful call; the
provider never sees more than LLM_MAX_CONCURRENCY calls at once; no agent ever holds more
than its max concurrency.
"""

import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count, Q

from agents import actions, team
from agents.models import SUBTASK_IN_FLIGHT, Agent, LLMCall, Subtask

from .stack import start_stack, wait_until_terminal

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

JOBS = 12
LLM_MAX_CONCURRENCY = 4
AGENT_MAX_CONCURRENCY = 2
SIMULATOR_FAULTS = [
    "--error-rate",
    "0.2",
    "--rate-limit-rate",
    "0.1",
    "--retry-after",
    "1",
    "--hang-rate",
    "0.05",
    "--seed",
    "7",
]
STACK_ENV = {
    "LLM_MAX_CONCURRENCY": str(LLM_MAX_CONCURRENCY),
    "LLM_TIMEOUT_S": "3",
    # Short enough that a lost piece of work comes back within the test; hung calls keep
    # their leases renewed until they time out.
    "LEASE_S": "5",
    "RECONCILE_EVERY_S": "1",
}
TERMINAL_WITHIN_S = 75


@pytest.fixture(scope="module")
def fault_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    if not _production():
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL and REDIS_URL)")
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("fault-stack"),
            latency_ms=50,
            workers=2,
            simulator_args=SIMULATOR_FAULTS,
            exclusive=True,
            **STACK_ENV,
        )
    yield running
    running.stop()


def _production() -> bool:
    from django.conf import settings

    return bool(settings.REDIS_URL) and connection.vendor == "postgresql"


class LoadSampler(threading.Thread):
    """Counts each agent's queued + working subtasks every 50 ms; keeps the maximum seen."""

    def __init__(self, job_ids: list[int]) -> None:
        super().__init__(name="load-sampler", daemon=True)
        self.job_ids = job_ids
        self.peak: Counter[int] = Counter()
        self.samples = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.05):
                loads = (
                    Subtask.objects.filter(job_id__in=self.job_ids, status__in=SUBTASK_IN_FLIGHT)
                    .values_list("agent")
                    .annotate(n=Count("id"))
                )
                for agent_id, n in loads:
                    self.peak[agent_id] = max(self.peak[agent_id], n)
                self.samples += 1
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def test_every_job_ends_and_nothing_is_overbooked_under_faults(fault_stack):
    team.seed()
    Agent.objects.update(max_concurrency=AGENT_MAX_CONCURRENCY)
    agents = {a.pk: a.slug for a in Agent.objects.all()}
    fault_stack.reset_simulator()

    started = time.monotonic()
    jobs = [
        actions.submit_job(
            title=f"Fault drill {n}", description=f"Design a cache, variant {n}.", priority=n % 3
        )
        for n in range(JOBS)
    ]
    ids = [j.pk for j in jobs]
    sampler = LoadSampler(ids)
    sampler.start()
    try:
        finished = wait_until_terminal(ids, timeout=TERMINAL_WITHIN_S)
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    # Let calls that were still running (a retry racing the job's end) land before counting.
    time.sleep(1)

    stats = fault_stack.simulator_stats()
    calls = LLMCall.objects.filter(job_id__in=ids)
    failed_calls = calls.exclude(error="")
    by_status = dict(
        failed_calls.values_list("http_status").annotate(n=Count("id")).order_by("http_status")
    )
    outcomes = Counter(j.status for j in finished)
    subtasks = Counter(
        Subtask.objects.filter(job_id__in=ids).values_list("status", flat=True).iterator()
    )
    print(
        f"\nfault run: {len(ids)} jobs in {wall:.1f} s; outcomes {dict(outcomes)}; "
        f"subtasks {dict(subtasks)}\n"
        f"  calls {calls.count()} (ok {calls.filter(error='').count()}, "
        f"retried/failed {failed_calls.count()}: by http status {by_status})\n"
        f"  simulator {stats}; peak in flight {stats['peak_in_flight']} "
        f"(cap {LLM_MAX_CONCURRENCY})\n"
        f"  agent peak load {{{', '.join(f'{agents[a]}: {n}' for a, n in sampler.peak.items())}}}"
        f" (max {AGENT_MAX_CONCURRENCY}), {sampler.samples} samples"
    )
    for job in finished:
        if job.status != "completed":
            print(f"  job #{job.pk} {job.status}: {job.error}")
            for sub in job.subtasks.exclude(status="completed"):
                tries = list(sub.calls.values_list("http_status", "error"))
                print(f"    {sub.key} {sub.status} after {sub.attempts} attempts: {sub.error}")
                print(f"      calls {[(status, error[:40]) for status, error in tries]}")

    assert sampler.error is None, sampler.error
    assert sampler.samples > 20
    assert all(j.is_terminal for j in finished)
    assert outcomes["completed"] > 0, "with these fault rates most jobs should complete"

    twice = (
        calls.filter(purpose=LLMCall.Purpose.SUBTASK, error="")
        .values("subtask")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not list(twice), f"subtasks with more than one successful call: {list(twice)}"
    for purpose in (LLMCall.Purpose.PLAN, LLMCall.Purpose.SYNTHESIS):
        again = (
            calls.filter(purpose=purpose, error="")
            .values("job")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
        )
        assert not list(again), f"jobs with more than one successful {purpose} call: {list(again)}"

    assert stats["peak_in_flight"] <= LLM_MAX_CONCURRENCY, stats
    over = {agents[a]: n for a, n in sampler.peak.items() if n > AGENT_MAX_CONCURRENCY}
    assert not over, f"agents over their max concurrency: {over}"

    # The trace shows the retries: failed attempts are rows with their status or error.
    assert failed_calls.filter(Q(http_status__in=[429, 500]) | ~Q(error="")).exists()
    assert failed_calls.count() >= stats["errors"] + stats["rate_limited"] > 0
    # Every completed job's subtasks each have exactly one successful call.
    for job in finished:
        if job.status == "completed":
            for sub in job.subtasks.all():
                assert sub.calls.filter(error="").count() == 1, sub
