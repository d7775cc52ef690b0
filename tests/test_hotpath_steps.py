"""The planning and synthesis steps' hot path (agents.hotpath, agents.calls): on PostgreSQL a
step call's record, a job step's claim, a state write and the synthesis's finish are one
statement each, and leave what the ORM path (SQLite's, here too) leaves."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import calls, hotpath, leases, planning, state, steps
from agents.models import (
    Agent,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    SharedStateVersion,
    SubtaskStatus,
)

from .inprocess import ELSEWHERE, run_job, team_on_a_model_of_its_own

pytestmark = pytest.mark.django_db


def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement steps are PostgreSQL's (SQLite keeps the ORM path)")


def _new_job(**fields) -> Job:
    job = Job.objects.create(title="J", description="Do it.", **fields)
    SharedState.objects.create(job=job)
    return job


def test_a_planned_and_synthesised_job_is_counted_and_written_as_the_orm_path_does(
    simulator, sent, django_capture_on_commit_callbacks, monkeypatch
):
    team_on_a_model_of_its_own(monkeypatch)

    job = run_job(sent, django_capture_on_commit_callbacks)

    assert job.status == JobStatus.COMPLETED
    assert job.claimed_at is None
    assert job.planned_at is not None and job.finished_at is not None
    steps_calls = LLMCall.objects.filter(job=job, subtask__isnull=True)
    assert set(steps_calls.values_list("purpose", flat=True)) == {"plan", "synthesis"}
    every = LLMCall.objects.filter(job=job).aggregate(t=Sum("prompt_tokens"), c=Sum("cost"))
    completion = LLMCall.objects.filter(job=job).aggregate(t=Sum("completion_tokens"))["t"]
    assert job.total_tokens == every["t"] + completion
    assert job.total_cost == every["c"] > 0  # a priced model: the cost is counted too
    orchestrator = Agent.objects.get(slug="orchestrator")
    own = steps_calls.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    assert orchestrator.completed_count == steps_calls.count()
    assert orchestrator.total_tokens == own["p"] + own["c"]
    assert orchestrator.latency_samples == steps_calls.count()

    shared = SharedState.objects.get(job=job)
    subtasks = job.subtasks.count()
    assert shared.version == 1 + subtasks + 1  # the plan, each result, the final answer
    assert shared.data["final"] == job.result
    assert shared.data["pending_tasks"] == []
    assert set(shared.data["results"]) == set(job.subtasks.values_list("key", flat=True))
    versions = SharedStateVersion.objects.filter(state=shared).order_by("version")
    first, last = versions.first(), versions.last()
    assert first.author == "orchestrator/plan"
    assert [t["id"] for t in first.changes["pending_tasks"]] == list(
        job.subtasks.order_by("pk").values_list("key", flat=True)
    )
    assert (last.author, last.changes) == ("orchestrator/synthesis", {"final": job.result})
    assert state.data_at(shared.pk, shared.version) == shared.data


def test_a_state_write_in_one_statement_is_the_orm_write():
    _postgresql_only()
    writes = [
        {"pending_tasks": [{"id": "a", "depends_on": []}, {"id": "b", "depends_on": ["a"]}]},
        {"results": {"a": "first"}, "pending_tasks": [{"id": "b", "depends_on": ["a"]}]},
        {"results": {"b": "second"}, "notes": {"deep": {"x": 1}}},
        {"notes": {"deep": {"y": 2}, "more": "text"}, "results": "replaced by a string"},
        {"results": {"c": "a dict again"}, "pending_tasks": []},
        {"final": "the answer " * 40},
    ]
    by_orm, in_one = _new_job(), _new_job()
    for n, changes in enumerate(writes, start=1):
        assert state.write(by_orm.pk, changes, author=f"w{n}") == n
        with CaptureQueriesContext(connection) as queries:
            assert hotpath.write_state(in_one.pk, changes, author=f"w{n}") == n
        assert len(queries) == 1

    orm, one = SharedState.objects.get(job=by_orm), SharedState.objects.get(job=in_one)
    assert one.data == orm.data
    assert (one.version, one.chain_bytes) == (orm.version, orm.chain_bytes)
    fields = ("version", "changes", "snapshot", "author")
    assert list(SharedStateVersion.objects.filter(state=one).values_list(*fields)) == list(
        SharedStateVersion.objects.filter(state=orm).values_list(*fields)
    )
    assert SharedStateVersion.objects.filter(state=one, snapshot__isnull=False).exists()
    assert state.data_at(one.pk, one.version) == one.data


def test_a_state_write_too_deep_is_refused_before_any_statement():
    _postgresql_only()
    job = _new_job()
    deep: dict = {}
    for _ in range(state.MAX_DEPTH + 1):
        deep = {"x": deep}
    with CaptureQueriesContext(connection) as queries, pytest.raises(state.StateTooDeep):
        hotpath.write_state(job.pk, {"notes": deep}, author="w")
    assert len(queries) == 0
    assert SharedState.objects.get(job=job).version == 0


def test_a_state_write_makes_the_state_row_it_lacks():
    _postgresql_only()
    job = Job.objects.create(title="J", description="No state row yet.")
    assert hotpath.write_state(job.pk, {"a": 1}, author="w") == 1
    assert SharedState.objects.get(job=job).data == {"a": 1}


def test_a_step_call_is_recorded_with_its_usage_in_one_statement(
    django_capture_on_commit_callbacks,
):
    _postgresql_only()
    orchestrator = Agent.objects.create(
        name="Orchestrator", slug="orchestrator", specialties=["planning"]
    )
    job = _new_job(status=JobStatus.PLANNING)
    call = LLMCall(
        agent=orchestrator,
        agent_version=orchestrator.version,
        job_id=job.pk,
        purpose=LLMCall.Purpose.PLAN,
        model=orchestrator.model,
        messages=[{"role": "user", "content": "plan"}],
        response="{}",
        prompt_tokens=30,
        completion_tokens=12,
        latency_s=0.5,
        http_status=200,
        cost=Decimal("0.0125"),
    )
    announced = []

    def saved(sender: type, instance: LLMCall, created: bool, **kwargs: object) -> None:
        announced.append((instance.pk, created))

    post_save.connect(saved, sender=LLMCall, weak=False)
    try:
        with CaptureQueriesContext(connection) as queries:
            with django_capture_on_commit_callbacks(execute=True):
                calls._record_step_call(call)
    finally:
        post_save.disconnect(saved, sender=LLMCall)

    assert len(queries) == 1
    assert call.pk is not None and not call._state.adding
    assert announced == [(call.pk, True)]  # post_save ran (the call.finished announcement)
    row = LLMCall.objects.get(pk=call.pk)
    assert (row.response, row.total_tokens, row.cost) == ("{}", 42, Decimal("0.0125"))
    assert row.created_at == call.created_at
    job.refresh_from_db()
    assert (job.total_tokens, job.total_cost) == (42, Decimal("0.0125"))
    orchestrator.refresh_from_db()
    assert (orchestrator.completed_count, orchestrator.latency_samples) == (1, 1)
    assert (orchestrator.total_tokens, orchestrator.avg_latency_s) == (42, 0.5)
    assert orchestrator.total_cost == Decimal("0.0125")


def test_a_job_step_is_claimed_once_in_one_statement_and_says_who_held_it_before():
    _postgresql_only()
    job = _new_job(status=JobStatus.SYNTHESIZING, lease_owner=ELSEWHERE)
    where = f"j.status = '{JobStatus.SYNTHESIZING}' AND j.claimed_at IS NULL"
    fields = {"claimed_at": timezone.now(), **leases.claim()}

    with CaptureQueriesContext(connection) as queries:
        claimed = hotpath.claim_job_step(job.pk, where, fields)
    assert len(queries) == 1
    mine, tried_before = claimed
    assert tried_before  # the lease owner before this claim: an earlier worker held it
    owner = leases.claim()["lease_owner"]
    assert (mine.pk, mine.status, mine.lease_owner) == (job.pk, job.status, owner)
    assert mine.claimed_at is not None and mine.title == "J"
    assert hotpath.claim_job_step(job.pk, where, fields) is None  # held now

    fresh = _new_job(status=JobStatus.SYNTHESIZING)
    assert hotpath.claim_job_step(fresh.pk, where, fields)[1] is False


def test_the_synthesis_finish_is_one_statement_and_only_for_a_synthesising_job():
    _postgresql_only()
    job = _new_job(status=JobStatus.SYNTHESIZING, claimed_at=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        assert hotpath.finish_synthesis(job, "the answer", author="orchestrator/synthesis")
    assert len(queries) == 1
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.result, row.claimed_at) == (JobStatus.COMPLETED, "the answer", None)
    assert row.finished_at is not None and job.status == JobStatus.COMPLETED
    shared = SharedState.objects.get(job=job)
    assert (shared.version, shared.data) == (1, {"final": "the answer"})

    again = hotpath.finish_synthesis(row, "another answer", author="orchestrator/synthesis")
    assert again is False  # completed already: neither the job nor its state change
    assert Job.objects.get(pk=job.pk).result == "the answer"
    assert SharedState.objects.get(job=job).version == 1


def _plan() -> planning.Plan:
    def planned(key: str, kind: str, depends_on: list[str]) -> planning.PlannedSubtask:
        description = f"Do the {kind} — « {key} »"  # not ASCII: its bytes counted as written
        return planning.PlannedSubtask(
            key=key,
            type=kind,
            description=description,
            assign_to="coder" if kind == "coding" else "",
            depends_on=depends_on,
            payload={"description": description, "extra": {"n": 1}},
        )

    return planning.Plan(
        subtasks=[
            planned("research", "research", []),
            planned("coding", "coding", ["research"]),
            planned("review", "review", ["research", "coding"]),
        ],
        notes=["three steps"],
    )


def test_a_plan_is_written_once_with_its_dependencies_and_pending_tasks(
    django_capture_on_commit_callbacks,
):
    orchestrator = Agent.objects.create(
        name="Orchestrator", slug="orchestrator", specialties=["planning"]
    )
    job = _new_job(status=JobStatus.PLANNING, priority=7, claimed_at=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        with django_capture_on_commit_callbacks(execute=True):
            steps._write_plan(job, orchestrator, _plan())
    if connection.vendor == "postgresql":
        assert len(queries) == 1

    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.claimed_at, row.lease_owner) == (JobStatus.WORKING, None, "")
    assert row.planned_at is not None and row.status_reason == "three steps"
    assert job.status == JobStatus.WORKING
    subtasks = list(row.subtasks.order_by("pk"))
    assert [(s.key, s.type, s.priority, s.status) for s in subtasks] == [
        ("research", "research", 7, SubtaskStatus.WAITING),
        ("coding", "coding", 7, SubtaskStatus.WAITING),
        ("review", "review", 7, SubtaskStatus.WAITING),
    ]
    coding = subtasks[1]
    assert coding.assign_hint == "coder" and coding.agent_id is None
    assert coding.payload == {"description": "Do the coding — « coding »", "extra": {"n": 1}}
    assert coding.created_at is not None and coding.cost == 0 and coding.attempts == 0
    depends = {s.key: sorted(d.key for d in s.depends_on.all()) for s in subtasks}
    assert depends == {"research": [], "coding": ["research"], "review": ["coding", "research"]}
    shared = SharedState.objects.get(job=job)
    assert shared.version == 1
    assert [t["id"] for t in shared.data["pending_tasks"]] == ["research", "coding", "review"]
    assert shared.data["pending_tasks"][2]["depends_on"] == ["research", "coding"]
    version = SharedStateVersion.objects.get(state=shared)
    assert (version.author, version.changes) == ("orchestrator/plan", shared.data)

    steps._write_plan(job, orchestrator, _plan())  # planned already: nothing is written again
    assert row.subtasks.count() == 3
    assert SharedState.objects.get(job=job).version == 1
