"""The hot path's hand-written SQL: each step of a job in one round trip on PostgreSQL.

Every LLM call used to cost about fifteen statements built by the ORM, and a transaction's
BEGIN and COMMIT on top (bench/RESULTS.md): half of a worker's CPU, and most of PostgreSQL's.
Here each step the hot path repeats is one statement:

- a subtask: `claim` (the conditional move queued → working, or waiting → working for the
  subtask a dispatch pass keeps for its own thread, with the lease, the attempt and the
  agent's version, returning the subtask, its job, its agent and its upstream results:
  UPDATE … FROM … RETURNING) and `complete` (`baton_complete_subtask`: the job's usage and row
  lock first, which orders the job's completions; the conditional move to completed, or the
  call counted or undone when a later attempt took over; the result as a new version of the
  shared state; the job's roll-up; the agent's outcome);
- a dispatch pass: `locked_reads` (`baton_locked_reads`: the advisory lock taken for the
  session and the agents' load and the runnable subtasks read under it) and `queue` (its
  assignments in one UPDATE); `unlock` once its writes committed;
- planning and synthesis: `claim_job_step`, `write_plan`, `write_state`
  (`baton_write_state`), `finish_synthesis` (a step call's record is agents.calls's own).

The PL/pgSQL functions are VOLATILE, so each of their statements reads a snapshot of its
own: a roll-up under the job's lock sees every sibling that completed before, a pass's reads
see every assignment the previous pass committed. `install` creates them after every migrate.

Each returns None (or takes the ORM path itself) where it does not apply — SQLite, a job
pinning agent versions, a row that moved — and the caller's ORM path, the reference and the
standalone mode's, says why. tests/test_hotpath*.py compare the rows both paths leave.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Model, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from . import events, leases, metrics, state
from .models import (
    SUBTASK_OPEN,
    Agent,
    Job,
    JobStatus,
    LLMCall,
    Subtask,
    SubtaskStatus,
)
from .state import SNAPSHOT_AFTER

# The job's roll-up and the state's merge mirror lifecycle.settle_job and
# state.record_result/statemerge.merge; statuses and constants come in as arguments.
COMPLETE_FUNCTION = """
CREATE OR REPLACE FUNCTION baton_complete_subtask(
    p_subtask bigint, p_attempt integer, p_call bigint, p_text text,
    p_latency double precision, p_tokens bigint, p_cost numeric, p_author text,
    p_now timestamptz, p_snapshot_after integer, p_keep double precision, p_open text[],
    OUT out_completed boolean, OUT out_counted boolean, OUT out_job bigint,
    OUT out_agent bigint, OUT out_job_status text, OUT out_version bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_key text;
    v_state record;
    v_pending jsonb;
    v_changes jsonb;
    v_data jsonb;
    v_chain bigint;
    v_snapshot jsonb;
    v_total integer;
    v_done integer;
    v_open integer;
    v_failed integer;
BEGIN
    out_completed := false;
    out_counted := false;
    SELECT s.job_id, s.agent_id, s.key INTO out_job, out_agent, v_key
        FROM agents_subtask s WHERE s.id = p_subtask;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The job's row lock first: it orders this completion after its siblings'.
    UPDATE agents_job SET total_tokens = total_tokens + p_tokens,
        total_cost = total_cost + p_cost WHERE id = out_job;
    UPDATE agents_subtask SET status = 'completed', updated_at = p_now, finished_at = p_now,
        result = p_text, error = '', latency_s = p_latency, tokens = tokens + p_tokens,
        cost = cost + p_cost
        WHERE id = p_subtask AND status = 'working' AND attempts = p_attempt;
    IF NOT FOUND THEN
        -- A later attempt took over. The call was paid all the same: counted here, unless
        -- that attempt finished from it (adopted it) and counts it itself.
        UPDATE agents_llmcall SET adopted = 2 WHERE id = p_call AND adopted = 0;
        IF FOUND THEN
            out_counted := true;
            UPDATE agents_subtask SET tokens = tokens + p_tokens, cost = cost + p_cost
                WHERE id = p_subtask;
        ELSE
            UPDATE agents_job SET total_tokens = total_tokens - p_tokens,
                total_cost = total_cost - p_cost WHERE id = out_job;
        END IF;
        RETURN;
    END IF;
    out_completed := true;

    -- The result into `results`, the subtask out of `pending_tasks` (state.record_result).
    INSERT INTO agents_sharedstate (job_id, data, version, chain_bytes, updated_at)
        VALUES (out_job, '{}', 0, 0, p_now) ON CONFLICT (job_id) DO NOTHING;
    SELECT id, data, version, chain_bytes INTO v_state
        FROM agents_sharedstate WHERE job_id = out_job FOR UPDATE;
    SELECT COALESCE(jsonb_agg(t ORDER BY i), '[]') INTO v_pending
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v_state.data -> 'pending_tasks')
            = 'array' THEN v_state.data -> 'pending_tasks' ELSE '[]' END)
            WITH ORDINALITY AS e(t, i)
        WHERE t -> 'id' IS DISTINCT FROM to_jsonb(v_key);
    v_changes := jsonb_build_object('results', jsonb_build_object(v_key, p_text),
        'pending_tasks', v_pending);
    v_data := v_state.data || jsonb_build_object(
        'results', CASE WHEN jsonb_typeof(v_state.data -> 'results') = 'object'
            THEN (v_state.data -> 'results') || jsonb_build_object(v_key, p_text)
            ELSE jsonb_build_object(v_key, p_text) END,
        'pending_tasks', v_pending);
    v_chain := v_state.chain_bytes + octet_length(v_changes::text);
    IF v_chain > p_snapshot_after * octet_length(v_data::text) THEN
        v_snapshot := v_data;
        v_chain := 0;
    END IF;
    out_version := v_state.version + 1;
    UPDATE agents_sharedstate SET data = v_data, version = out_version,
        chain_bytes = v_chain, updated_at = p_now WHERE id = v_state.id;
    INSERT INTO agents_sharedstateversion (state_id, version, changes, snapshot, author,
        created_at) VALUES (v_state.id, out_version, v_changes, v_snapshot, p_author, p_now);

    -- The job's roll-up (lifecycle.settle_job).
    SELECT count(*), count(*) FILTER (WHERE status = 'completed'),
        count(*) FILTER (WHERE status = ANY (p_open)),
        count(*) FILTER (WHERE status IN ('failed', 'cancelled'))
        INTO v_total, v_done, v_open, v_failed
        FROM agents_subtask WHERE job_id = out_job;
    IF v_total > 0 AND v_done = v_total THEN
        UPDATE agents_job SET status = 'synthesizing', updated_at = p_now, claimed_at = NULL,
            waiting_for = '' WHERE id = out_job AND status = 'working';
        IF FOUND THEN
            out_job_status := 'synthesizing';
        END IF;
    ELSIF v_failed > 0 AND v_open = 0 THEN
        UPDATE agents_job SET status = 'failed', updated_at = p_now, finished_at = p_now,
            waiting_for = '', error = v_failed || ' of ' || v_total || ' subtasks failed.'
            WHERE id = out_job AND status = 'working';
        IF FOUND THEN
            out_job_status := 'failed';
        END IF;
    END IF;

    -- Last: the agent's row is shared by all its subtasks' completions (record_outcome).
    UPDATE agents_agent SET completed_count = completed_count + 1,
        avg_latency_s = CASE WHEN latency_samples = 0 THEN p_latency
            ELSE avg_latency_s * p_keep + p_latency * (1 - p_keep) END,
        latency_samples = latency_samples + 1, total_tokens = total_tokens + p_tokens,
        total_cost = total_cost + p_cost WHERE id = out_agent;
END
$$
"""


def install(using: str = "default", **kwargs: object) -> None:
    """Create (or replace) the functions: after every migrate (a post_migrate receiver)."""
    from django.db import connections

    db = connections[using]
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute(COMPLETE_FUNCTION)
            install_step_functions(cursor)
            cursor.execute("DROP FUNCTION IF EXISTS baton_locked_reads(bigint, text[])")
            cursor.execute(LOCKED_READS_FUNCTION)


def available() -> bool:
    return connection.vendor == "postgresql"


@dataclass(frozen=True)
class Completion:
    """What `complete` did: `completed` (else the call was `counted` to the subtask, or not
    at all), the job's new status when it moved, the state's new version."""

    completed: bool
    counted: bool
    job_status: str | None
    state_version: int | None

    @property
    def ready(self) -> bool:
        return self.job_status == JobStatus.SYNTHESIZING


def complete(sub: Subtask, answer: LLMCall, text: str, *, author: str) -> Completion:
    """A subtask's completion from its answer, in one statement (see the module's doc)."""
    now = timezone.now()
    args = [
        sub.pk,
        sub.attempts,
        answer.pk,
        text,
        answer.latency_s,
        answer.total_tokens,
        Decimal(answer.cost),
        author,
        now,
        SNAPSHOT_AFTER,
        metrics.MOVING_AVERAGE_KEEP,
        [str(s) for s in SUBTASK_OPEN],
    ]
    # A consumer of the events (webhooks, streams) keeps them in the moving transaction.
    durable = events.would_keep(
        sub.job_id,
        ("subtask.status", {"status": SubtaskStatus.COMPLETED}),
        ("state.version", {}),
        ("job.status", {"status": JobStatus.SYNTHESIZING}),
        ("job.status", {"status": JobStatus.FAILED}),
    )
    with transaction.atomic() if durable else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT * FROM baton_complete_subtask("
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::text[])",
                args,
            )
            completed, counted, job_id, agent_id, job_status, version = cursor.fetchone()
        if job_id is None:
            return Completion(False, False, None, None)
        if completed or counted:
            events.job_changed(job_id)  # its usage
        if completed:
            sub.status, sub.result, sub.error, sub.finished_at = (
                SubtaskStatus.COMPLETED,
                text,
                "",
                now,
            )
            events.subtask_changed(sub.pk, job_id, status=SubtaskStatus.COMPLETED)
            events.state_changed(job_id, version=version)
            if job_status:
                events.job_changed(job_id, status=job_status)
            events.agent_changed(agent_id)
    return Completion(completed, counted, job_status, version)


def claim(
    subtask_id: int, *, agent_id: int | None = None, allocation: dict | None = None
) -> Subtask | None:
    """Move a queued subtask of a working job to working for this process, returning it with
    its job and agent loaded, and what its prompt quotes of its upstream subtasks
    (`upstream_results`, `has_upstream`); None when that did not happen here (the caller's
    ORM path says why: gone, taken, its job stopped, or agent versions pinned).

    With `agent_id` (a dispatch pass keeping the subtask for its own thread): a waiting
    subtask, assigned to that agent with its `allocation` in the same statement.
    """
    if not available():
        return None
    now = timezone.now()
    lease = leases.claim()
    assign, expected = "", SubtaskStatus.QUEUED
    args: list = [SubtaskStatus.WORKING, now, now]
    if agent_id is not None:
        assign, expected = (
            "agent_id = %s, allocation = %s::jsonb, next_attempt_at = NULL, ",
            (SubtaskStatus.WAITING),
        )
        args += [agent_id, json.dumps(allocation or {})]
    args += [lease["lease_owner"], lease["lease_expires_at"], lease["last_crash"]]
    args += [subtask_id, expected, JobStatus.WORKING, agent_id]
    sql = (
        f"UPDATE agents_subtask AS s SET status = %s, updated_at = %s, started_at = %s, {assign}"
        f"attempts = s.attempts + 1, agent_version = a.version, lease_owner = %s, "
        f"lease_expires_at = %s, last_crash = %s "
        f"FROM agents_job AS j, agents_agent AS a "
        f"WHERE s.id = %s AND s.status = %s AND j.id = s.job_id AND j.status = %s "
        f"AND a.id = COALESCE(%s, s.agent_id) "
        f"AND (j.agent_versions IS NULL OR j.agent_versions = '{{}}') "
        f"RETURNING {_columns(Subtask, 's')}, {_columns(Job, 'j')}, {_columns(Agent, 'a')}, "
        f"(SELECT json_agg(json_build_array(u.key, u.type, left(u.result, %s)) ORDER BY u.id) "
        f"FROM agents_subtask AS u JOIN agents_subtask_depends_on AS d ON d.to_subtask_id = u.id "
        f"WHERE d.from_subtask_id = s.id)"
    )
    args.append(settings.PROMPT_DEPENDENCY_CHARS)
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    sub = _instance(Subtask, values)
    sub.job = _instance(Job, values)
    sub.agent = _instance(Agent, values)
    upstream = next(values)
    # What its prompt quotes of the subtasks it depends on: (key, type, result), in order.
    upstream = json.loads(upstream) if isinstance(upstream, str) else upstream or []
    sub.upstream_results = [tuple(row) for row in upstream]
    sub.has_upstream = bool(upstream)
    events.subtask_changed(sub.pk, sub.job_id, status=SubtaskStatus.WORKING)
    return sub


def queue(assignments: list[tuple[int, int, dict]]) -> list[int]:
    """A dispatch pass's assignments (subtask, agent, allocation) moved waiting → queued in
    one statement; the ids it moved, each announced (Subtask.transition's conditional move,
    for many rows)."""
    ids, agents, allocations = zip(*assignments, strict=True)
    now = timezone.now()
    sql = (
        "UPDATE agents_subtask AS s SET status = %s, updated_at = %s, agent_id = v.agent, "
        "allocation = v.allocation::jsonb, next_attempt_at = NULL "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS v(id, agent, allocation) "
        "WHERE s.id = v.id AND s.status = %s RETURNING s.id, s.job_id"
    )
    args = [SubtaskStatus.QUEUED, now, list(ids), list(agents)]
    args += [[json.dumps(a) for a in allocations], SubtaskStatus.WAITING]
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        moved = dict(cursor.fetchall())
    for pk in ids:  # in the pass's order
        if pk in moved:
            events.subtask_changed(pk, moved[pk], status=SubtaskStatus.QUEUED)
    return [pk for pk in ids if pk in moved]


def _columns(model: type[Model], alias: str) -> str:
    return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in _fields(model))


def _fields(model: type[Model]) -> list:
    return list(model._meta.concrete_fields)


def _instance(model: type[Model], row: Iterator) -> Model:
    """A model instance from the next values of `row`, as a queryset would build it: every
    field's own conversion from the database's value (JSON text, for one)."""
    fields = _fields(model)
    values = []
    for field, value in zip(fields, row, strict=False):  # `row` goes on to the next model
        if value is not None and hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        values.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], values)


# Planning and synthesis (agents.steps): the job step's claim, a state write and the
# synthesis's finish, one round trip each on PostgreSQL
# (a step call's record is agents.calls's own).

# state.update's write as one function: the merge of statemerge.merge (top-level keys
# replaced, dicts merged one level deep), the version under the state's row lock, the
# snapshot rule (state.takes_snapshot) and the version row. The changes' size comes from
# Python (their JSON text as state.update counts it); the state's, as the function above does.
WRITE_STATE_FUNCTION = """
CREATE OR REPLACE FUNCTION baton_write_state(
    p_job bigint, p_changes jsonb, p_changes_bytes bigint, p_author text, p_now timestamptz,
    p_snapshot_after integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_state record;
    v_data jsonb;
    v_key text;
    v_value jsonb;
    v_chain bigint;
    v_snapshot jsonb;
    v_version bigint;
BEGIN
    INSERT INTO agents_sharedstate (job_id, data, version, chain_bytes, updated_at)
        VALUES (p_job, '{}', 0, 0, p_now) ON CONFLICT (job_id) DO NOTHING;
    SELECT id, data, version, chain_bytes INTO v_state
        FROM agents_sharedstate WHERE job_id = p_job FOR UPDATE;
    v_data := v_state.data;
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_changes) AS e LOOP
        IF jsonb_typeof(v_value) = 'object' AND jsonb_typeof(v_data -> v_key) = 'object' THEN
            v_value := (v_data -> v_key) || v_value;
        END IF;
        v_data := v_data || jsonb_build_object(v_key, v_value);
    END LOOP;
    v_chain := v_state.chain_bytes + p_changes_bytes;
    IF v_chain > p_snapshot_after * octet_length(v_data::text) THEN
        v_snapshot := v_data;
        v_chain := 0;
    END IF;
    v_version := v_state.version + 1;
    UPDATE agents_sharedstate SET data = v_data, version = v_version, chain_bytes = v_chain,
        updated_at = p_now WHERE id = v_state.id;
    INSERT INTO agents_sharedstateversion (state_id, version, changes, snapshot, author,
        created_at) VALUES (v_state.id, v_version, p_changes, v_snapshot, p_author, p_now);
    RETURN v_version;
END
$$
"""


def install_step_functions(cursor: object) -> None:
    cursor.execute(WRITE_STATE_FUNCTION)


def _state_args(changes: dict, author: str, now: datetime) -> tuple[str, list]:
    """The arguments' SQL and values of `baton_write_state` after the job's id."""
    state.check_depth(changes)  # refused before any write, as state.update does
    text = json.dumps(changes)
    return "%s::jsonb, %s, %s, %s, %s", [text, len(text), author, now, SNAPSHOT_AFTER]


def write_state(job_id: int, changes: dict, *, author: str) -> int:
    """state.write, in one statement on PostgreSQL (the ORM's elsewhere)."""
    if not available():
        return state.write(job_id, changes, author=author)
    sql, args = _state_args(changes, author, timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT baton_write_state(%s, {sql})", [job_id, *args])
        (version,) = cursor.fetchone()
    events.state_changed(job_id, version=version)
    return version


def claim_job_step(job_id: int, where: str, fields: dict) -> tuple[Job, bool] | None:
    """A job's step claimed in one statement where `where` holds (SQL on the job's row `j`),
    writing `fields`: the job as it is now, and whether a worker held the step before (its
    lease owner was set). None where that did not happen (the caller's ORM path says why)."""
    if not available():
        return None
    meta = Job._meta
    sets = ", ".join(
        f"{connection.ops.quote_name(meta.get_field(name).column)} = %s" for name in fields
    )
    args = [meta.get_field(name).get_db_prep_save(v, connection) for name, v in fields.items()]
    sql = (
        f"UPDATE agents_job AS j SET {sets} FROM agents_job AS o "
        f"WHERE j.id = %s AND o.id = j.id AND {where} "
        f"RETURNING o.lease_owner, {_columns(Job, 'j')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*args, job_id])
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    tried_before = bool(next(values))
    return _instance(Job, values), tried_before


def finish_synthesis(job: Job, text: str, *, author: str) -> bool:
    """The synthesis's end in one statement: the job's move to completed with its result,
    and `final` written to its shared state (when the move happened). False when the job had
    moved on."""
    now = timezone.now()
    fields = {
        "status": JobStatus.COMPLETED,
        "updated_at": now,
        "result": text,
        "claimed_at": None,
        "finished_at": now,
        "waiting_for": "",
    }
    rows = Job.objects.filter(pk=job.pk, status=JobStatus.SYNTHESIZING)
    update = rows.order_by().query.chain(UpdateQuery)
    update.add_update_values(fields)
    moving, move_args = update.get_compiler(connection.alias).as_sql()
    state_sql, state_args = _state_args({"final": text}, author, now)
    sql = f"WITH j AS ({moving} RETURNING id) SELECT baton_write_state(j.id, {state_sql}) FROM j"
    durable = events.would_keep(
        job.pk, ("job.status", {"status": JobStatus.COMPLETED}), ("state.version", {})
    )
    with transaction.atomic() if durable else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(sql, [*move_args, *state_args])
            row = cursor.fetchone()
        if row is None:
            return False
        for name, value in fields.items():
            setattr(job, name, value)
        events.job_changed(job.pk, status=JobStatus.COMPLETED)
        events.state_changed(job.pk, version=row[0])
    return True


def write_plan(
    job: Job,
    moved: dict,
    subtasks: list[Subtask],
    edges: list[tuple[str, str]],
    changes: dict,
    *,
    author: str,
) -> bool:
    """A plan in one statement: the job's conditional move (still planning, no plan yet: its
    row lock and check), its `subtasks` (in their order) and their dependencies (`edges`,
    pairs of keys), and `changes` as a new version of its shared state. False, writing
    nothing, when the job had moved on or was planned already."""
    rows = Job.objects.filter(pk=job.pk, status=JobStatus.PLANNING, planned_at__isnull=True)
    update = rows.order_by().query.chain(UpdateQuery)
    update.add_update_values(moved)
    moving, move_args = update.get_compiler(connection.alias).as_sql()
    fields = [f for f in _fields(Subtask) if f is not Subtask._meta.auto_field]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # The rows as JSON, typed by the table's row type (a NULL as its column's type).
    values = [{f.column: f.pre_save(sub, True) for f in fields} for sub in subtasks]
    state_sql, state_args = _state_args(changes, author, moved["updated_at"])
    edge_table = Subtask.depends_on.through._meta.db_table
    sql = (
        f"WITH j AS ({moving} RETURNING id), "
        f"s AS (INSERT INTO agents_subtask ({columns}) SELECT {columns} "
        f"FROM jsonb_populate_recordset(NULL::agents_subtask, %s::jsonb) WITH ORDINALITY "
        f"WHERE EXISTS (SELECT 1 FROM j) ORDER BY ordinality RETURNING id, key), "
        f"e AS (INSERT INTO {edge_table} (from_subtask_id, to_subtask_id) "
        f"SELECT f.id, t.id FROM jsonb_to_recordset(%s::jsonb) AS d(f text, t text) "
        f"JOIN s AS f ON f.key = d.f JOIN s AS t ON t.key = d.t) "
        f"SELECT baton_write_state(j.id, {state_sql}) FROM j"
    )
    args = [
        *move_args,
        json.dumps(values, default=_json_value),
        json.dumps([{"f": f, "t": t} for f, t in edges]),
        *state_args,
    ]
    durable = events.would_keep(
        job.pk, ("job.status", {"status": moved["status"]}), ("state.version", {})
    )
    with transaction.atomic() if durable else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            row = cursor.fetchone()
        if row is None:
            return False
        for name, value in moved.items():
            setattr(job, name, value)
        events.state_changed(job.pk, version=row[0])
        events.job_changed(job.pk, status=moved["status"])  # last, as Job.transition was
    return True


def _json_value(value: object) -> str:
    """A value json.dumps does not write (a date and time, a decimal), as PostgreSQL reads it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a column value")


# Dispatch: the pass's lock and its reads in one statement. Being VOLATILE, the function reads
# each query in a snapshot taken after the lock is held: everything the previous pass wrote
# and committed before letting go is seen (its assignments count in the agents' load).
LOCKED_READS_FUNCTION = """
CREATE OR REPLACE FUNCTION baton_locked_reads(p_lock bigint, p_queries text[], p_now timestamptz)
RETURNS json LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_query text;
    v_rows json;
    v_parts json[] := '{}';
BEGIN
    IF NOT pg_try_advisory_lock(p_lock) THEN
        RETURN NULL;
    END IF;
    FOREACH v_query IN ARRAY p_queries LOOP
        EXECUTE 'SELECT COALESCE(json_agg(row_to_json(ROW(r.*))), ''[]'') FROM ('
            || v_query || ') AS r' INTO v_rows USING p_now;
        v_parts := v_parts || v_rows;
    END LOOP;
    RETURN array_to_json(v_parts);
END
$$
"""
# Stands for "now" while a read's SQL is written once per process; $1 in the text sent.
_NOW = datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
_written: dict[Callable, list[str]] = {}


def locked_reads(
    lock_id: int, reads: Callable[[datetime], list[QuerySet]], now: datetime
) -> list[list[tuple]] | None:
    """Take the advisory lock `lock_id` for this session and read `reads(now)` (values_list
    querysets) under it, in one round trip; None, having read nothing, when another session
    holds the lock. The caller gives the lock back (`unlock`) once its writes committed.

    The querysets' SQL is written once per process (compiling them was a tenth of a worker's
    time), `now` passed as a parameter. Rows come back unordered (sort them); values as JSON
    gives them (a JSON field's value parsed, numbers, strings, booleans: no dates here)."""
    queries = _written.get(reads)
    if queries is None:
        queries = _written[reads] = [_with_now(qs) for qs in reads(_NOW)]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT baton_locked_reads(%s, %s::text[], %s)", [lock_id, queries, now])
            (parts,) = cursor.fetchone()
    except Exception:
        unlock(lock_id)  # it may have been taken before a read failed
        raise
    if parts is None:
        return None
    parts = json.loads(parts) if isinstance(parts, str) else parts
    return [_as_tuples(rows) for rows in parts]


def _with_now(qs: QuerySet) -> str:
    """The queryset's SQL, its values written in, `_NOW` (where it is used) as $1."""
    sql = connection.ops.compose_sql(*qs.query.sql_with_params())
    literal = connection.ops.compose_sql("%s", [_NOW])
    if sql.count(literal) > 1:
        raise ValueError(f"{literal} is in the query more than once: {sql}")
    return sql.replace(literal, "$1")


def _as_tuples(rows: list[dict]) -> list[tuple]:
    """Rows (objects keyed f1, f2… in the query's column order) as values_list's tuples:
    since Django 5.2 a values_list query selects its columns in the order asked."""
    return [tuple(row.values()) for row in rows]


def unlock(lock_id: int) -> None:
    """Give back the session's advisory lock; a broken connection already gave it back."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])
    except (OperationalError, InterfaceError):
        pass
