"""The hot path (agents/hotpath.py): a subtask's claim and completion in one statement each on
PostgreSQL. Its completion leaves the rows the ORM path (agents.steps, the reference) leaves:
the subtask, the job's usage and roll-up, the shared state's new version, the agent's outcome;
a call whose attempt lost the step is counted once or not at all; siblings completing at once
see each other. Its claim moves only a queued subtask of a working job that pins no agent
version, and returns the subtask with its job and agent, their JSON read as the ORM reads it.
"""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import hotpath, process, steps
from agents.models import (
    SUBTASK_OPEN,
    Agent,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    SharedStateVersion,
    Subtask,
    SubtaskStatus,
)
from agents.state import SNAPSHOT_AFTER
from webhooks.models import Endpoint

from .inprocess import queued_subtask

# The words "PostgreSQL and Redis" let the suite's summary count these as service skips.
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the hot path's SQL needs PostgreSQL (DATABASE_URL, as make test's PostgreSQL "
    "and Redis runs give it)",
)

MINE = "mine"
ANSWER = "The cache is warm; the queue drains in 40 ms."


def _agent(slug: str) -> Agent:
    """A coder with some history, so that the moving average and the sums show."""
    return Agent.objects.create(
        name="Coder",
        slug=slug,
        specialties=["coding"],
        completed_count=4,
        latency_samples=4,
        avg_latency_s=2.0,
        total_tokens=100,
        total_cost=Decimal("0.5"),
    )


def _answered(agent: Agent, siblings: dict[str, str], *, chain_bytes: int = 0) -> tuple:
    """A working job whose subtask MINE (working, attempt 1, of `agent`) has its answer; the
    siblings in the statuses given, before and after it. `pending_tasks` lists the open ones
    and MINE in plan order, `results` holds the completed ones'."""
    now = timezone.now()
    job = Job.objects.create(
        title="J",
        description="Do it.",
        status=JobStatus.WORKING,
        planned_at=now,
        claimed_at=now,  # both paths clear it on the move to synthesis
        total_tokens=1000,
        total_cost=Decimal("1"),
    )
    keys = list(siblings)
    order = [*keys[:1], MINE, *keys[1:]]
    statuses = {**siblings, MINE: SubtaskStatus.WORKING}
    pending = [_task(k) for k in order if statuses[k] in SUBTASK_OPEN]
    results = {k: f"done {k}" for k in order if statuses[k] == SubtaskStatus.COMPLETED}
    SharedState.objects.create(
        job=job,
        data={"notes": "the cache is warm", "pending_tasks": pending, "results": results},
        version=3,
        chain_bytes=chain_bytes,
    )
    subs = {
        k: Subtask.objects.create(
            job=job,
            key=k,
            type="coding",
            payload={"description": f"do {k}"},
            agent=agent,
            status=statuses[k],
            attempts=1,
            started_at=now - timedelta(seconds=5),
        )
        for k in order
    }
    call = _call(subs[MINE])
    return subs[MINE], call


def _task(key: str) -> dict:
    return {"id": key, "type": "coding", "description": f"do {key}", "depends_on": []}


def _call(sub: Subtask, **fields) -> LLMCall:
    return LLMCall.objects.create(
        agent=sub.agent,
        job=sub.job,
        subtask=sub,
        purpose=LLMCall.Purpose.SUBTASK,
        model=sub.agent.model,
        response=ANSWER,
        prompt_tokens=30,
        completion_tokens=12,
        latency_s=1.5,
        cost=Decimal("0.012345"),
        http_status=200,
        **fields,
    )


def _orm_complete(monkeypatch, sub: Subtask, call: LLMCall) -> bool:
    """The reference: steps._complete_subtask with the hot path unavailable."""
    with monkeypatch.context() as patch:
        patch.setattr(hotpath, "available", lambda: False)
        return steps._complete_subtask(sub, call)


def _hot_complete(sub: Subtask, call: LLMCall) -> hotpath.Completion:
    return hotpath.complete(sub, call, call.response, author=f"{sub.agent.slug}/{sub.key}")


def _outcome(sub: Subtask, call: LLMCall) -> dict:
    """The rows a completion writes, without what differs by construction (ids, times, the
    agent's slug in the author)."""
    row = Subtask.objects.get(pk=sub.pk)
    job = Job.objects.get(pk=sub.job_id)
    state = SharedState.objects.get(job_id=sub.job_id)
    versions = SharedStateVersion.objects.filter(state=state)
    agent = Agent.objects.get(pk=sub.agent_id)
    call.refresh_from_db()
    return {
        "subtask": {
            "status": row.status,
            "result": row.result,
            "error": row.error,
            "latency_s": row.latency_s,
            "tokens": row.tokens,
            "cost": row.cost,
            "attempts": row.attempts,
            "finished": row.finished_at is not None,
        },
        "siblings": list(
            Subtask.objects.filter(job_id=sub.job_id)
            .exclude(pk=sub.pk)
            .values_list("key", "status")
        ),
        "job": {
            "status": job.status,
            "error": job.error,
            "total_tokens": job.total_tokens,
            "total_cost": job.total_cost,
            "claimed": job.claimed_at is not None,
            "finished": job.finished_at is not None,
            "waiting_for": job.waiting_for,
        },
        "state": {"data": state.data, "version": state.version, "chain_bytes": state.chain_bytes},
        "versions": [
            {
                "version": v.version,
                "changes": v.changes,
                "snapshot": v.snapshot,
                "author": v.author.replace(agent.slug, "<agent>"),
            }
            for v in versions.order_by("version")
        ],
        "agent": {
            "completed_count": agent.completed_count,
            "failed_count": agent.failed_count,
            "latency_samples": agent.latency_samples,
            "avg_latency_s": round(agent.avg_latency_s, 9),
            "total_tokens": agent.total_tokens,
            "total_cost": agent.total_cost,
        },
        "call_adopted": call.adopted,
    }


# Siblings (before MINE, then after it), and the job's status once MINE completed.
SCENARIOS = {
    "others open": (
        {"a": SubtaskStatus.QUEUED, "b": SubtaskStatus.WAITING},
        JobStatus.WORKING,
        "",
    ),
    "the last one": (
        {"a": SubtaskStatus.COMPLETED, "b": SubtaskStatus.COMPLETED},
        JobStatus.SYNTHESIZING,
        "",
    ),
    "the last open one, a sibling failed": (
        {"a": SubtaskStatus.FAILED, "b": SubtaskStatus.COMPLETED},
        JobStatus.FAILED,
        "1 of 3 subtasks failed.",
    ),
    "the last open one, a sibling cancelled": (
        {"a": SubtaskStatus.COMPLETED, "b": SubtaskStatus.CANCELLED},
        JobStatus.FAILED,
        "1 of 3 subtasks failed.",
    ),
    "a sibling cancelled, one still open": (
        {"a": SubtaskStatus.CANCELLED, "b": SubtaskStatus.AWAITING_APPROVAL},
        JobStatus.WORKING,
        "",
    ),
}


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize("over", [0, 1], ids=["no snapshot, just", "snapshot, just"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_completion_leaves_the_rows_the_orm_path_leaves(monkeypatch, scenario, over):
    siblings, job_status, job_error = SCENARIOS[scenario]
    pending = [_task(k) for k in siblings if siblings[k] in SUBTASK_OPEN]
    results = {k: f"done {k}" for k in siblings if siblings[k] == SubtaskStatus.COMPLETED}
    after = {
        "notes": "the cache is warm",
        "pending_tasks": pending,
        "results": {**results, MINE: ANSWER},
    }
    changes = {"results": {MINE: ANSWER}, "pending_tasks": pending}
    # The changes' bytes since the last snapshot, this version's included, reach the bound
    # (`over` 0: no snapshot yet) or pass it by one byte (`over` 1: this version keeps one).
    bound = SNAPSHOT_AFTER * len(json.dumps(after))
    chain_bytes = bound - len(json.dumps(changes)) + over
    hot_sub, hot_call = _answered(_agent("coder-hot"), siblings, chain_bytes=chain_bytes)
    orm_sub, orm_call = _answered(_agent("coder-orm"), siblings, chain_bytes=chain_bytes)

    done = _hot_complete(hot_sub, hot_call)
    ready = _orm_complete(monkeypatch, orm_sub, orm_call)

    hot, orm = _outcome(hot_sub, hot_call), _outcome(orm_sub, orm_call)
    assert hot == orm
    # And what both should be, so that a mistake shared by both paths shows too.
    synthesizing = job_status == JobStatus.SYNTHESIZING
    assert (done.completed, done.counted, done.ready, ready) == (
        True,
        False,
        synthesizing,
        synthesizing,
    )
    assert done.job_status == (None if job_status == JobStatus.WORKING else job_status)
    assert done.state_version == 4
    assert (hot_sub.status, hot_sub.result, hot_sub.finished_at is not None) == (
        SubtaskStatus.COMPLETED,
        ANSWER,
        True,
    )
    assert hot["subtask"] == {
        "status": SubtaskStatus.COMPLETED,
        "result": ANSWER,
        "error": "",
        "latency_s": 1.5,
        "tokens": 42,
        "cost": Decimal("0.012345"),
        "attempts": 1,
        "finished": True,
    }
    assert hot["siblings"] == list(siblings.items())
    assert hot["job"] == {
        "status": job_status,
        "error": job_error,
        "total_tokens": 1042,
        "total_cost": Decimal("1.012345"),
        "claimed": not synthesizing,
        "finished": job_status == JobStatus.FAILED,
        "waiting_for": "",
    }
    assert hot["state"] == {
        "data": after,
        "version": 4,
        "chain_bytes": 0 if over else bound,
    }
    assert hot["versions"] == [
        {
            "version": 4,
            "changes": changes,
            "snapshot": after if over else None,
            "author": f"<agent>/{MINE}",
        }
    ]
    assert hot["agent"] == {
        "completed_count": 5,
        "failed_count": 0,
        "latency_samples": 5,
        "avg_latency_s": round(2.0 * 0.7 + 1.5 * 0.3, 9),
        "total_tokens": 142,
        "total_cost": Decimal("0.512345"),
    }
    assert hot["call_adopted"] == LLMCall.Reuse.NONE


@postgresql_only
@pytest.mark.django_db
def test_a_completion_writes_a_result_in_any_script_as_the_orm_path_does(monkeypatch):
    text = 'Naïve café ✓ — "quoted" \\ back\nslash, 数据 and 🚀'
    subs = []
    for slug in ("coder-hot", "coder-orm"):
        sub, call = _answered(_agent(slug), {"a": SubtaskStatus.QUEUED})
        LLMCall.objects.filter(pk=call.pk).update(response=text)
        call.refresh_from_db()
        subs.append((sub, call))
    (hot_sub, hot_call), (orm_sub, orm_call) = subs

    _hot_complete(hot_sub, hot_call)
    _orm_complete(monkeypatch, orm_sub, orm_call)

    hot, orm = _outcome(hot_sub, hot_call), _outcome(orm_sub, orm_call)
    assert hot["subtask"]["result"] == orm["subtask"]["result"] == text
    assert hot["state"]["data"] == orm["state"]["data"]
    assert hot["state"]["data"]["results"] == {MINE: text}
    assert hot["versions"] == orm["versions"]
    # Not `chain_bytes`: the ORM path counts the JSON text with non-ASCII escaped (\u00e9:
    # 6), the function its UTF-8 bytes (2). Only the snapshots' cadence depends on it.


@pytest.mark.django_db
def test_the_step_completes_a_subtask_whichever_path_the_database_takes():
    """On PostgreSQL the hot path, on SQLite the ORM path: the same rows."""
    agent = _agent("coder")
    sub, call = _answered(agent, {"a": SubtaskStatus.COMPLETED})
    LLMCall.objects.filter(pk=call.pk).update(finish_reason="length")
    call.refresh_from_db()
    text = ANSWER + "\n\n(Truncated: the model reached its max_tokens.)"

    assert steps._complete_subtask(sub, call) is True

    out = _outcome(sub, call)
    assert out["subtask"]["status"] == SubtaskStatus.COMPLETED
    assert out["subtask"]["result"] == text
    assert (out["subtask"]["tokens"], out["subtask"]["cost"]) == (42, Decimal("0.012345"))
    assert out["job"]["status"] == JobStatus.SYNTHESIZING
    assert (out["job"]["total_tokens"], out["job"]["total_cost"]) == (1042, Decimal("1.012345"))
    assert out["state"]["data"] == {
        "notes": "the cache is warm",
        "pending_tasks": [],
        "results": {"a": "done a", MINE: text},
    }
    assert out["versions"] == [
        {
            "version": 4,
            "changes": {"results": {MINE: text}, "pending_tasks": []},
            "snapshot": None,
            "author": f"<agent>/{MINE}",
        }
    ]
    assert (out["agent"]["completed_count"], out["agent"]["total_tokens"]) == (5, 142)


# --- one statement each ------------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize("siblings", [0, 8])
def test_a_completion_is_one_statement_whatever_its_siblings(siblings):
    others = {f"s{i}": SubtaskStatus.COMPLETED for i in range(siblings)}
    sub, call = _answered(_agent("coder"), others)

    Endpoint.objects.subscribed_events()  # read once per few seconds per process: not per call
    with CaptureQueriesContext(connection) as queries:
        done = _hot_complete(sub, call)

    assert done.completed and done.ready
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "baton_complete_subtask" in queries[0]["sql"]


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize("siblings", [0, 8])
def test_a_claim_is_one_statement_whatever_its_siblings(siblings):
    sub = queued_subtask(_agent("coder"))
    for i in range(siblings):
        Subtask.objects.create(job=sub.job, key=f"s{i}", type="coding", agent=sub.agent)

    Endpoint.objects.subscribed_events()  # as above
    with CaptureQueriesContext(connection) as queries:
        claimed = hotpath.claim(sub.pk)

    assert claimed is not None
    assert len(queries) == 1, [q["sql"] for q in queries]


# --- a later attempt took over -----------------------------------------------------------


def _taken_over(slug: str, adopted: int) -> tuple[Subtask, LLMCall]:
    """MINE's attempt 1 answered after the reconciler gave the subtask to attempt 2."""
    sub, call = _answered(_agent(slug), {"a": SubtaskStatus.QUEUED})
    Subtask.objects.filter(pk=sub.pk).update(attempts=2)
    LLMCall.objects.filter(pk=call.pk).update(adopted=adopted)
    call.refresh_from_db()
    return sub, call  # `sub` still says attempt 1: the loser's view


@postgresql_only
@pytest.mark.django_db
def test_a_call_whose_attempt_lost_the_step_is_counted_once(monkeypatch):
    hot_sub, hot_call = _taken_over("coder-hot", LLMCall.Reuse.NONE)
    orm_sub, orm_call = _taken_over("coder-orm", LLMCall.Reuse.NONE)

    done = _hot_complete(hot_sub, hot_call)
    assert _orm_complete(monkeypatch, orm_sub, orm_call) is False

    assert done == hotpath.Completion(False, True, None, None)
    hot, orm = _outcome(hot_sub, hot_call), _outcome(orm_sub, orm_call)
    assert hot == orm
    assert hot["call_adopted"] == LLMCall.Reuse.COUNTED
    assert hot["subtask"] == {
        "status": SubtaskStatus.WORKING,  # attempt 2's, untouched but for the usage
        "result": "",
        "error": "",
        "latency_s": None,
        "tokens": 42,
        "cost": Decimal("0.012345"),
        "attempts": 2,
        "finished": False,
    }
    assert (hot["job"]["total_tokens"], hot["job"]["total_cost"]) == (1042, Decimal("1.012345"))
    assert hot["job"]["status"] == JobStatus.WORKING
    assert hot["state"]["version"] == 3 and hot["versions"] == []
    assert hot["agent"]["completed_count"] == 4  # the outcome is attempt 2's to record


@postgresql_only
@pytest.mark.django_db
def test_a_call_adopted_by_the_later_attempt_is_not_counted_by_its_own(monkeypatch):
    hot_sub, hot_call = _taken_over("coder-hot", LLMCall.Reuse.ADOPTED)
    orm_sub, orm_call = _taken_over("coder-orm", LLMCall.Reuse.ADOPTED)

    done = _hot_complete(hot_sub, hot_call)
    assert _orm_complete(monkeypatch, orm_sub, orm_call) is False

    assert done == hotpath.Completion(False, False, None, None)
    hot, orm = _outcome(hot_sub, hot_call), _outcome(orm_sub, orm_call)
    assert hot == orm
    assert hot["call_adopted"] == LLMCall.Reuse.ADOPTED
    assert hot["subtask"]["status"] == SubtaskStatus.WORKING
    assert (hot["subtask"]["tokens"], hot["subtask"]["result"]) == (0, "")
    assert (hot["job"]["total_tokens"], hot["job"]["total_cost"]) == (1000, Decimal("1"))
    assert hot["state"]["version"] == 3
    assert hot["agent"]["completed_count"] == 4


# --- siblings completing at once ---------------------------------------------------------


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_last_of_two_siblings_completing_at_once_sees_the_other():
    sub, call = _answered(_agent("coder"), {"a": SubtaskStatus.WORKING})
    sibling = Subtask.objects.get(job_id=sub.job_id, key="a")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        main_pid = cursor.fetchone()[0]
    locked = threading.Event()
    seen: dict[str, object] = {}

    def complete_sibling() -> None:
        """The sibling's completion on the ORM path: the job's row lock, its subtask moved;
        committed once the main thread's completion waits on that lock."""
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=sub.job_id)
                Subtask.objects.filter(pk=sibling.pk).update(status=SubtaskStatus.COMPLETED)
                locked.set()
                deadline = time.monotonic() + 10
                while not _waiting_on_a_lock(main_pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                seen["main blocked"] = _waiting_on_a_lock(main_pid)
                time.sleep(0.1)
        except BaseException as exc:
            seen["error"] = exc
            locked.set()
        finally:
            connection.close()

    thread = threading.Thread(target=complete_sibling)
    thread.start()
    try:
        assert locked.wait(timeout=10), "the sibling's transaction never took the lock"
        assert "error" not in seen, seen
        done = _hot_complete(sub, call)  # waits on the job's lock until the sibling commits
    finally:
        thread.join(timeout=20)
    assert not thread.is_alive(), "the sibling's thread never finished"
    assert "error" not in seen, seen
    assert seen["main blocked"], "the completion did not wait on the job's lock"

    assert done.completed and done.ready
    job = Job.objects.get(pk=sub.job_id)
    assert job.status == JobStatus.SYNTHESIZING
    assert job.total_tokens == 1042


# --- the claim -----------------------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db
def test_a_claim_returns_the_subtask_with_its_job_and_agent(django_assert_num_queries):
    agent = _agent("coder")
    Agent.objects.filter(pk=agent.pk).update(version=3)
    sub = queued_subtask(agent)
    before = timezone.now()

    claimed = hotpath.claim(sub.pk)

    assert claimed is not None and claimed.pk == sub.pk
    with django_assert_num_queries(0):
        assert (claimed.job.title, claimed.agent.slug) == ("Find the notes", "coder")
        assert claimed.job.pk == claimed.job_id and claimed.agent.pk == claimed.agent_id
        assert claimed.agent.version == 3
        assert claimed.has_upstream is False
    assert claimed.status == SubtaskStatus.WORKING
    assert (claimed.attempts, claimed.agent_version) == (1, 3)
    assert claimed.lease_owner == process.me()
    assert claimed.lease_expires_at > before and claimed.started_at >= before
    row = Subtask.objects.get(pk=sub.pk)
    assert (row.status, row.attempts, row.agent_version, row.lease_owner) == (
        SubtaskStatus.WORKING,
        1,
        3,
        process.me(),
    )
    assert row.lease_expires_at == claimed.lease_expires_at


@postgresql_only
@pytest.mark.django_db
def test_a_claim_reads_the_upstream_results_its_prompt_quotes(settings):
    settings.PROMPT_DEPENDENCY_CHARS = 12
    sub = queued_subtask(_agent("coder"))
    for key, result in (("second", "Second result, long enough"), ("first", "First result")):
        upstream = Subtask.objects.create(
            job=sub.job, key=key, type="coding", status=SubtaskStatus.COMPLETED, result=result
        )
        sub.depends_on.add(upstream)

    claimed = hotpath.claim(sub.pk)

    assert claimed.has_upstream is True
    # In the order of the upstream rows, each cut where the prompt cuts it.
    assert claimed.upstream_results == [
        ("second", "coding", "Second resul"),
        ("first", "coding", "First result"),
    ]
    prompt = steps._prompt(claimed)[1]["content"]
    assert "Result of second (coding):\nSecond resul\n" in prompt


@postgresql_only
@pytest.mark.django_db
def test_a_claim_of_a_subtask_without_upstream_reads_none():
    claimed = hotpath.claim(queued_subtask(_agent("coder")).pk)
    assert (claimed.has_upstream, claimed.upstream_results) == (False, [])


def _unchanged(sub: Subtask) -> tuple:
    row = Subtask.objects.get(pk=sub.pk)
    return (row.status, row.attempts, row.agent_version, row.lease_owner, row.started_at)


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize(
    "why",
    ["not queued", "its job not working", "its job pins agent versions", "already claimed"],
)
def test_a_claim_that_does_not_apply_returns_none_and_changes_nothing(why):
    agent = _agent("coder")
    sub = queued_subtask(agent)
    if why == "not queued":
        Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.WAITING)
    elif why == "its job not working":
        Job.objects.filter(pk=sub.job_id).update(status=JobStatus.WAITING)
    elif why == "its job pins agent versions":
        Job.objects.filter(pk=sub.job_id).update(agent_versions={"coder": 1})
    else:
        assert hotpath.claim(sub.pk) is not None
    before = _unchanged(sub)

    assert hotpath.claim(sub.pk) is None

    assert _unchanged(sub) == before
    assert Job.objects.get(pk=sub.job_id).status == (
        JobStatus.WAITING if why == "its job not working" else JobStatus.WORKING
    )


@postgresql_only
@pytest.mark.django_db
def test_the_step_claims_a_subtask_pinning_versions_on_the_orm_path():
    """A job that pins agent versions is the ORM path's: the step still claims it."""
    sub = queued_subtask(_agent("coder"), agent_versions={"coder": 1})

    claimed = steps._claim_subtask(sub.pk)

    assert claimed is not None and claimed.status == SubtaskStatus.WORKING
    assert Subtask.objects.get(pk=sub.pk).attempts == 1


@postgresql_only
@pytest.mark.django_db
def test_a_dispatch_claim_assigns_a_waiting_subtask_with_its_allocation():
    agent = _agent("coder")
    sub = queued_subtask(agent)
    Subtask.objects.filter(pk=sub.pk).update(
        status=SubtaskStatus.WAITING, agent=None, next_attempt_at=timezone.now()
    )
    allocation = {"eligible": ["coder"], "chosen": "coder", "why": "least loaded"}

    claimed = hotpath.claim(sub.pk, agent_id=agent.pk, allocation=allocation)

    assert claimed is not None
    assert (claimed.agent_id, claimed.agent.slug) == (agent.pk, "coder")
    assert claimed.allocation == allocation
    row = Subtask.objects.get(pk=sub.pk)
    assert (row.status, row.agent_id, row.allocation, row.next_attempt_at, row.attempts) == (
        SubtaskStatus.WORKING,
        agent.pk,
        allocation,
        None,
        1,
    )


@postgresql_only
@pytest.mark.django_db
def test_a_dispatch_claim_takes_only_a_waiting_subtask():
    agent = _agent("coder")
    sub = queued_subtask(agent)  # queued: another pass assigned it already
    before = _unchanged(sub)

    assert hotpath.claim(sub.pk, agent_id=agent.pk, allocation={"why": "x"}) is None

    assert _unchanged(sub) == before


@postgresql_only
@pytest.mark.django_db
def test_a_claim_reads_json_as_the_orm_does():
    agent = Agent.objects.create(
        name="Coder", slug="coder", specialties=["coding", "review"], tools=["web_search"]
    )
    sub = queued_subtask(agent)
    Subtask.objects.filter(pk=sub.pk).update(payload={"description": "find", "n": [1, 2]})

    claimed = hotpath.claim(sub.pk)

    assert claimed.payload == {"description": "find", "n": [1, 2]}
    assert claimed.description == "find"
    assert claimed.allocation == {}
    assert claimed.job.agent_versions == {} and isinstance(claimed.job.agent_versions, dict)
    assert claimed.agent.specialties == ["coding", "review"]
    assert claimed.agent.tools == ["web_search"]
    reference = Subtask.objects.select_related("job", "agent").get(pk=sub.pk)
    for model, field_names in (
        ("sub", [f.attname for f in Subtask._meta.concrete_fields]),
        ("job", [f.attname for f in Job._meta.concrete_fields]),
        ("agent", [f.attname for f in Agent._meta.concrete_fields]),
    ):
        got = claimed if model == "sub" else getattr(claimed, model)
        want = reference if model == "sub" else getattr(reference, model)
        for name in field_names:
            assert getattr(got, name) == getattr(want, name), f"{model}.{name}"


# --- the dispatch pass's lock and reads ----------------------------------------------------


def _locked_reads():
    from agents import coalesce, dispatch

    return hotpath.locked_reads(coalesce.LOCK_ID, dispatch._pass_reads, timezone.now())


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_pass_reads_under_its_lock_what_the_orm_reads():
    from agents import coalesce

    researcher = Agent.objects.create(name="R", slug="researcher", specialties=["research"])
    Agent.objects.create(name="V", slug="reviewer", specialties=["review"], max_concurrency=3)
    queued_subtask(researcher)
    sub = queued_subtask(researcher)
    Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.WAITING, agent=None)
    Subtask.objects.create(job=sub.job, key="z", type="review", assign_hint="reviewer")
    soon, late = timezone.now() - timedelta(seconds=1), timezone.now() + timedelta(seconds=60)
    for key, at in (("due", soon), ("later", late)):  # a retry's wait: `now` is a parameter
        Subtask.objects.create(job=sub.job, key=key, type="research", next_attempt_at=at)
    from agents import dispatch

    expected = [sorted(qs) for qs in dispatch._pass_reads(timezone.now())]
    assert expected[0] and len(expected[1]) == 3  # agents with their load; three runnable
    assert any(row[6] for row in expected[0])  # a load read (the queued subtask)

    with CaptureQueriesContext(connection) as queries:
        reads = _locked_reads()
    try:
        assert len(queries) == 1
        assert [sorted(rows) for rows in reads] == expected
    finally:
        hotpath.unlock(coalesce.LOCK_ID)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_pass_reads_nothing_while_another_session_holds_its_lock():
    from agents import coalesce

    queued_subtask(Agent.objects.create(name="R", slug="researcher", specialties=["research"]))
    holding, release, seen = threading.Event(), threading.Event(), {}

    def other_pass() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [coalesce.LOCK_ID])
                holding.set()
                release.wait(timeout=10)
                cursor.execute("SELECT pg_advisory_unlock(%s)", [coalesce.LOCK_ID])
        except BaseException as exc:
            seen["error"] = exc
            holding.set()
        finally:
            connection.close()

    thread = threading.Thread(target=other_pass)
    thread.start()
    try:
        assert holding.wait(timeout=10) and "error" not in seen, seen
        assert _locked_reads() is None
    finally:
        release.set()
        thread.join(timeout=20)
    assert "error" not in seen, seen
    # Given back by the other session: this one takes it, reads, and gives it back in turn.
    assert _locked_reads() is not None
    hotpath.unlock(coalesce.LOCK_ID)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert cursor.fetchone()[0] == 0


@postgresql_only
@pytest.mark.django_db
def test_a_pass_queues_its_assignments_in_one_statement(django_capture_on_commit_callbacks):
    coder = _agent("coder")
    first = queued_subtask(coder)
    job = first.job
    waiting = [
        Subtask.objects.create(job=job, key=f"w{n}", type="coding", next_attempt_at=timezone.now())
        for n in range(3)
    ]
    Subtask.objects.filter(pk=first.pk).update(status=SubtaskStatus.WAITING)
    taken = waiting[1]
    Subtask.objects.filter(pk=taken.pk).update(status=SubtaskStatus.CANCELLED)
    assignments = [(s.pk, coder.pk, {"score": n}) for n, s in enumerate([*waiting, first])]

    with CaptureQueriesContext(connection) as queries:
        moved = hotpath.queue(assignments)

    assert len(queries) == 1
    assert moved == [waiting[0].pk, waiting[2].pk, first.pk]  # the pass's order; one had moved
    rows = {s.pk: s for s in Subtask.objects.filter(job=job)}
    for n, sub in enumerate([*waiting, first]):
        if sub.pk == taken.pk:
            assert (rows[sub.pk].status, rows[sub.pk].agent_id) == (SubtaskStatus.CANCELLED, None)
            continue
        row = rows[sub.pk]
        assert (row.status, row.agent_id, row.allocation) == (
            SubtaskStatus.QUEUED,
            coder.pk,
            {"score": n},
        )
        assert row.next_attempt_at is None
