"""Run a whole job in the test's thread, on the LLM simulator: its steps, and the Celery
messages they send, delivered one by one until none is left; or a subtask a worker holds (or
held, and died), for the reconciler to take back."""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from agents import dispatch, enqueue, models, recovery, steps
from agents.management.commands.llm_simulator import SimulatorServer
from agents.models import (
    Agent,
    Job,
    JobStatus,
    LLMCall,
    ModelPrice,
    SharedState,
    Subtask,
    SubtaskStatus,
)

from .simulator_fixture import running_simulator

TASKS = {
    "plan_job": steps.plan_job,
    "run_subtask": steps.run_subtask_and_continue,
    "synthesize_job": steps.synthesize_job,
    "dispatch_ready": dispatch.dispatch_ready,
}


@contextmanager
def simulated_llm(settings, **config: object) -> Iterator[SimulatorServer]:
    """The LLM simulator (with `config`), and this process's calls sent to it."""
    with running_simulator(**config) as server:
        settings.LLM_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
        settings.LLM_API_KEY = "sk-test"
        settings.REDIS_URL = ""  # the local limiter
        yield server


def capture_messages(monkeypatch) -> list[tuple[str, tuple]]:
    """The Celery messages the steps send, kept for `run_job` to deliver."""
    messages: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        enqueue, "send_now", lambda name, *args, **opts: messages.append((name, args))
    )
    return messages


def team_on_a_model_of_its_own(monkeypatch) -> str:
    """An orchestrator and a coder on a priced model no other process uses (the metrics
    directory is shared by every process of this checkout)."""
    model = f"test-{uuid.uuid4().hex[:10]}"
    ModelPrice.objects.create(
        model=model, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00")
    )
    monkeypatch.setattr(models._price_cache, "_read_at", float("-inf"))  # read the new price
    Agent.objects.create(
        name="Orchestrator", slug="orchestrator", specialties=["planning"], model=model
    )
    Agent.objects.create(
        name="Coder", slug="coder", specialties=["research", "coding", "review"], model=model
    )
    return model


def run_job(sent, capture, title: str = "Write a haiku") -> Job:
    job = Job.objects.create(title=title, description="About queues.", status=JobStatus.QUEUED)
    SharedState.objects.create(job=job)
    sent.append(("plan_job", (job.pk,)))
    deliver(sent, capture)
    job.refresh_from_db()
    return job


def deliver(sent, capture) -> None:
    """Run the steps of the messages sent, and of those they send, until none is left."""
    for _ in range(100):
        if not sent:
            break
        name, args = sent.pop(0)
        with capture(execute=True):
            TASKS[name](*args)


# A lease holder on another host, as the reconciler sees it.
ELSEWHERE = "another-host:4242:1"


def working_subtask(*, started_ago_s: float, lease_in_s: float, owner: str = ELSEWHERE) -> Subtask:
    """A coding subtask a worker (`owner`) took `started_ago_s` ago, its lease lapsing in
    `lease_in_s` (negative: lapsed)."""
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    job = Job.objects.create(title="J", description="Do it.", status=JobStatus.WORKING)
    SharedState.objects.create(job=job)
    now = timezone.now()
    return Subtask.objects.create(
        job=job,
        key="s1",
        type="coding",
        payload={"description": "write it"},
        agent=agent,
        status=SubtaskStatus.WORKING,
        attempts=1,
        started_at=now - timedelta(seconds=started_ago_s),
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_in_s),
    )


def reconcile(django_capture_on_commit_callbacks) -> None:
    """One reconciler pass, its messages sent on commit."""
    with django_capture_on_commit_callbacks(execute=True):
        recovery.reconcile()


def queued_subtask(agent: Agent, **job_fields) -> Subtask:
    job = Job.objects.create(
        title="Find the notes",
        description="Read what the team wrote.",
        status=JobStatus.WORKING,
        planned_at=timezone.now(),
        **job_fields,
    )
    SharedState.objects.create(job=job, data={"notes": "the cache is warm"}, version=1)
    return Subtask.objects.create(
        job=job,
        key="research",
        type="research",
        payload={"description": "find the notes"},
        agent=agent,
        status=SubtaskStatus.QUEUED,
    )


def died_after_asking(agent: Agent, tool: str, arguments: dict, *, text: str = "") -> Subtask:
    """A subtask whose worker died once the model had asked for `tool` (the call recorded,
    its tool call not yet), its lease lapsed, taken back by the reconciler."""
    sub = queued_subtask(agent)
    now = timezone.now()
    Subtask.objects.filter(pk=sub.pk).update(
        status=SubtaskStatus.WORKING,
        attempts=1,
        started_at=now - timedelta(seconds=30),
        lease_owner=ELSEWHERE,
        lease_expires_at=now - timedelta(seconds=1),
    )
    LLMCall.objects.create(
        agent=agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=agent.model,
        messages=[{"role": "user", "content": "Find the notes."}],
        response=text,
        prompt_tokens=30,
        completion_tokens=12,
        cost=Decimal("0.01"),
        http_status=200,
        finish_reason="tool_calls",
        tool_calls=[
            {
                "id": "call_recorded",
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps(arguments)},
            }
        ],
    )
    recovery.reconcile()
    assert Subtask.objects.get(pk=sub.pk).status == SubtaskStatus.QUEUED
    return sub
