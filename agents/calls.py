"""LLM-call recording: every model call a step makes, its budget check and its usage.

`call_llm` records one LLMCall row per attempt (and refuses, before any call, once the job's
budget is spent: `allowance`); `adopt_recorded` finishes a step from an answer already paid
for; `db_retry` writes a record again through a database restart; `add_usage` rolls a call's
tokens and cost up to its job. The steps (agents.steps, agents.toolloop) call these; they
call only the models and the leaf modules below them. A job's roll-up and end are in
agents.lifecycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from decimal import Decimal
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, QuerySet, signals
from django.db.models.sql import InsertQuery

from . import events, llm, metrics, streaming, telemetry
from .models import Agent, Job, LLMCall, ModelPrice
from .text import clean, clean_json
from .tokens import estimate_tokens, messages_text

T = TypeVar("T")

BUDGET_EXCEEDED = "budget exceeded"
UNPRICED = (
    "budget exceeded: the model {model} has no price, so a money budget cannot be kept "
    "(an admin sets one under Model prices)"
)
# How long a step waits for the database to come back (a restart) before giving up.
DB_RETRY_S = 30.0

log = logging.getLogger(__name__)


class BudgetExceeded(Exception):
    pass


@telemetry.observes_llm_calls(llm.LLMError)
def call_llm(
    *,
    agent: Agent,
    job_id: int,
    purpose: str,
    messages: list[dict],
    subtask_id: int | None = None,
    temperature: float | None = None,
    budgeted: bool = True,
    tools: list[dict] | None = None,
) -> LLMCall:
    """One attempt, recorded as an LLMCall row whether it succeeds or not; returns the row.

    Raises BudgetExceeded, before any call, once the job has spent its budget (checked
    unless the caller knows the job has none). A subtask's caller rolls the call's usage up
    (`add_usage`) in the transaction that records what the call was for; a planning or
    synthesis call is counted here, with its record. The record outlasts a database restart
    (it is written again until the database is back), since a recorded answer is never paid
    for twice (`adopt_recorded`).
    """
    max_tokens = agent.max_tokens
    if budgeted:
        spent = Job.objects.only("total_tokens", "total_cost", "budget_tokens", "budget_cost")
        max_tokens = allowance(spent.get(pk=job_id), agent.model, messages, max_tokens)
    # A judge runs as an agent no row holds (agents.scoring): its calls name none.
    saved = agent.pk is not None
    call = LLMCall(
        agent=agent if saved else None,
        agent_version=agent.version if saved else None,
        job_id=job_id,
        subtask_id=subtask_id,
        purpose=purpose,
        model=agent.model,
        messages=messages,
    )
    # A subtask's text goes to its job's page as it arrives, while a page watches the job.
    live_text = streaming.for_call(job_id, subtask_id) if subtask_id is not None else None
    try:
        completion = llm.complete(
            model=agent.model,
            messages=messages,
            temperature=agent.temperature if temperature is None else temperature,
            max_tokens=max_tokens,
            tools=tools,
            on_text=live_text,
        )
    except llm.LLMError as exc:
        call.error, call.http_status, call.latency_s = clean(str(exc)), exc.status, exc.latency_s
        db_retry(call.save)
        raise
    if live_text is not None:
        live_text.finish()
    # The provider's text may hold what no database stores (NUL): the save would fail
    # after the call was paid for, and at every later attempt.
    call.response = clean(completion.text)
    call.prompt_tokens = completion.prompt_tokens
    call.completion_tokens = completion.completion_tokens
    call.latency_s = completion.latency_s
    call.http_status = completion.http_status
    call.finish_reason = clean(completion.finish_reason)
    call.tool_calls = clean_json(list(completion.tool_calls))
    if completion.http_status is not None:  # the offline model costs nothing
        call.cost = ModelPrice.cost_of(
            agent.model, completion.prompt_tokens, completion.completion_tokens
        )
    if subtask_id is None:
        db_retry(lambda: _record_step_call(call))
    else:
        db_retry(call.save)
    return call


def allowance(job: Job, model: str, messages: list[dict], max_tokens: int) -> int:
    """The `max_tokens` a call may ask for within the job's budgets, its prompt counted
    (estimated, four characters a token); BudgetExceeded when not even a token is left.

    A job's spend can then pass a budget by the estimate's error only, and by what calls
    of its other subtasks, running at the same time, spend of the same remainder.
    """
    if job.over_budget():
        raise BudgetExceeded(BUDGET_EXCEEDED)
    prompt = estimate_tokens(messages_text(messages))
    allowed = max_tokens
    if job.budget_tokens is not None:
        allowed = min(allowed, job.budget_tokens - job.total_tokens - prompt)
    if job.budget_cost is not None and not llm.is_offline():
        prices = ModelPrice.prices_of(model)
        if prices is None:
            raise BudgetExceeded(UNPRICED.format(model=model))
        input_price, output_price = prices
        left = job.budget_cost - job.total_cost - input_price * prompt / 1_000_000
        if output_price > 0:
            allowed = min(allowed, int(left * 1_000_000 / output_price))
        elif left <= 0:
            allowed = 0
    if allowed < 1:
        raise BudgetExceeded(BUDGET_EXCEEDED)
    return allowed


def _record_step_call(call: LLMCall) -> None:
    if connection.vendor == "postgresql":  # the row and its usage in one statement
        _record_step_call_at_once(call)
        return
    with transaction.atomic():
        call.save()
        add_step_usage(call)


def _record_step_call_at_once(call: LLMCall) -> None:
    """A planning or synthesis call's row, the job's usage and the orchestrator's outcome
    (add_step_usage) in one statement: data-modifying CTEs, all or nothing like the
    transaction they replace. The row's post_save receivers run as a save would run them."""
    using = connection.alias
    fields = [f for f in LLMCall._meta.local_concrete_fields if f is not LLMCall._meta.auto_field]
    query = InsertQuery(LLMCall)
    query.insert_values(fields, [call])  # auto_now_add fields are set on `call` here
    ((insert, params),) = query.get_compiler(using).as_sql()
    tokens, cost = call.total_tokens, Decimal(call.cost)
    counted = bool(tokens or cost)
    keep = metrics.MOVING_AVERAGE_KEEP
    sql = (
        f"WITH c AS ({insert} RETURNING id), "
        "j AS (UPDATE agents_job SET total_tokens = total_tokens + %s, "
        "total_cost = total_cost + %s WHERE id = %s AND %s), "
        "a AS (UPDATE agents_agent SET completed_count = completed_count + 1, "
        "avg_latency_s = CASE WHEN latency_samples = 0 THEN %s "
        "ELSE avg_latency_s * %s + %s END, latency_samples = latency_samples + 1, "
        "total_tokens = total_tokens + %s, total_cost = total_cost + %s WHERE id = %s) "
        "SELECT id FROM c"
    )
    latency = call.latency_s
    args = [*params, tokens, cost, call.job_id, counted]
    args += [latency, keep, latency * (1 - keep), tokens, cost, call.agent_id]
    durable = events.would_keep(call.job_id, ("call.finished", {}))
    with transaction.atomic() if durable else nullcontext():
        signals.pre_save.send(LLMCall, instance=call, raw=False, using=using, update_fields=None)
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            (call.pk,) = cursor.fetchone()
        call._state.adding, call._state.db = False, using
        signals.post_save.send(
            LLMCall, instance=call, created=True, update_fields=None, raw=False, using=using
        )
        if counted:
            events.job_changed(call.job_id)
        if call.agent_id is not None:
            events.agent_changed(call.agent_id)


def adopt_recorded(calls: QuerySet[LLMCall]) -> LLMCall | None:
    """A successful call among `calls` that its step never finished from, now this caller's.

    Its worker died (or lost the database) after the provider answered: finishing from the
    recorded answer pays nothing again. A call adopted by an attempt that died in turn is
    adopted again; one its maker counted after losing the step is not (it was not used). An
    answer that asked for tools is never a final answer (agents.toolloop goes on from it).
    """
    usable = calls.filter(error="", adopted__lt=LLMCall.Reuse.COUNTED, tool_calls=[])
    usable = usable.exclude(response="")
    for call in usable.order_by("-pk")[:3]:
        rows = LLMCall.objects.filter(pk=call.pk, adopted__lt=LLMCall.Reuse.COUNTED)
        if rows.update(adopted=LLMCall.Reuse.ADOPTED):
            return call
    return None


def db_retry(write: Callable[[], T]) -> T:
    """Run `write` (one statement or one whole transaction), again while the database is
    down, for up to DB_RETRY_S: a PostgreSQL restart does not lose a paid answer."""
    deadline = time.monotonic() + DB_RETRY_S
    delay = 0.2
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline or connection.in_atomic_block:
                raise
            log.warning("database unavailable; writing again in %.1f s", delay, exc_info=True)
            connection.close()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def add_usage(job_id: int, tokens: int, cost: Decimal) -> None:
    """Roll a call's tokens and cost up to its job (budgets read them).

    Inside a transaction this also takes the job's row lock, which orders every completion
    of the job's subtasks (see lifecycle.settle_job).
    """
    Job.objects.filter(pk=job_id).update(
        total_tokens=F("total_tokens") + tokens, total_cost=F("total_cost") + cost
    )
    events.job_changed(job_id)


def add_step_usage(call: LLMCall) -> None:
    """A planning or synthesis call: the job's usage, and the orchestrator's metrics (its
    calls count on the agents page like any agent's)."""
    if call.total_tokens or call.cost:
        add_usage(call.job_id, call.total_tokens, call.cost)
    if call.agent_id is None:  # a judge's call: no agent row keeps its metrics
        return
    Agent.objects.record_outcome(
        call.agent_id,
        ok=True,
        latency_s=call.latency_s,
        tokens=call.total_tokens,
        cost=call.cost,
    )
