"""Telemetry: Prometheus counters, OpenTelemetry GenAI traces, the ids in structured logs.

A leaf: the steps and `calls.call_llm` wear its decorators, and it imports nothing from
`agents`. Per LLM call it only bumps counters and a histogram (no SQL, no Redis). Counters
live in files under PROMETHEUS_MULTIPROC_DIR, one per process, which the web process sums at
scrape (dashboard.prometheus); the settings set that variable before prometheus_client is
first imported. Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: the SDK is then not
even imported.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from prometheus_client import Counter, Histogram, multiprocess

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Provider latencies: from a local model's tenth of a second to LLM_TIMEOUT_S's default.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

LLM_CALLS = Counter(
    "baton_llm_calls", "LLM calls made, each attempt once", ["agent", "model", "outcome"]
)
LLM_TOKENS = Counter(
    "baton_llm_tokens", "Tokens of LLM calls (kind: input or output)", ["agent", "model", "kind"]
)
LLM_COST = Counter("baton_llm_cost_usd", "What LLM calls cost, in USD", ["agent", "model"])
LLM_LATENCY = Histogram(
    "baton_llm_call_duration_seconds",
    "How long the provider took to answer (or fail), limiter wait excluded",
    ["agent", "model", "purpose"],
    buckets=LATENCY_BUCKETS,
)
REDISPATCHES = Counter(
    "baton_reconciler_redispatches",
    "Work the reconciler sent again (plans, syntheses, subtasks) or freed (limiter slots)",
    ["kind"],
)
WEBHOOK_DELIVERIES = Counter(
    "baton_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"]
)

# The job and subtask this thread's step is about, for log lines and spans.
_job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("baton_job_id", default=None)
_subtask_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "baton_subtask_id", default=None
)


# Metrics


class _Series(NamedTuple):
    ok: Any
    failed: Any
    input_tokens: Any
    output_tokens: Any
    cost: Any
    latency: Any


@functools.lru_cache(maxsize=1024)
def _series(agent: str, model: str, purpose: str) -> _Series:
    """The labelled children of one agent, model and purpose, looked up once."""
    return _Series(
        LLM_CALLS.labels(agent, model, "ok"),
        LLM_CALLS.labels(agent, model, "error"),
        LLM_TOKENS.labels(agent, model, "input"),
        LLM_TOKENS.labels(agent, model, "output"),
        LLM_COST.labels(agent, model),
        LLM_LATENCY.labels(agent, model, purpose),
    )


def redispatched(counts: dict[str, int]) -> None:
    """What one reconciler pass re-sent or freed (`recovery.reconcile`'s counts)."""
    for kind, n in counts.items():
        REDISPATCHES.labels(kind).inc(n)


def webhook_delivered(outcome: str) -> None:
    """One webhook delivery attempt: "delivered", "failed" (will be retried), "gave_up",
    "refused" (a target not allowed)... a short fixed word, never a URL."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def forget_dead_processes() -> int:
    """Remove the counter files of processes that no longer run; the web process calls it
    as it starts, so the directory does not grow with every worker restart.

    Files of live processes (workers already running) are kept, and only files named as
    prometheus_client names them (`counter_<pid>.db`...) are touched. Counts of a dead
    process leave the sums: Prometheus reads that as a counter reset, as it would a restart.
    """
    removed = 0
    for path in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).iterdir():
        match = re.fullmatch(r"[a-z_]+_(\d+)\.db", path.name)
        if match and path.is_file() and not path.is_symlink() and not _runs(int(match[1])):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def process_stopped() -> None:
    """A worker shutting down: its per-process gauges (if any) leave the sums."""
    multiprocess.mark_process_dead(os.getpid())


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


# Traces


class _Tracing(NamedTuple):
    provider: Any
    tracer: Any
    client_kind: Any
    error: Any


_tracing_lock = threading.Lock()
_tracing: _Tracing | None = None
_tracing_read = False


def _tracer() -> _Tracing | None:
    if not _tracing_read:
        with _tracing_lock:
            if not _tracing_read:  # the first of the threads that got here
                _configure_tracing()
    return _tracing


def configure_tracing() -> None:
    """Read OTEL_EXPORTER_OTLP_ENDPOINT (again: tests change it) and set tracing up or off.

    Spans are batched and sent from a background thread over OTLP/HTTP (protobuf) to
    `<endpoint>/v1/traces`; OTEL_EXPORTER_OTLP_HEADERS and the SDK's other OTEL_* variables
    apply as usual. Service name: OTEL_SERVICE_NAME (default "baton").
    """
    with _tracing_lock:
        _configure_tracing()


def _configure_tracing() -> None:
    global _tracing, _tracing_read
    if _tracing is not None:
        _tracing.provider.shutdown()
    _tracing = None
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if endpoint:
        _tracing = _start_tracing(endpoint)
    _tracing_read = True


def _start_tracing(endpoint: str) -> _Tracing:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, StatusCode

    resource = Resource.create({"service.name": settings.OTEL_SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("baton")
    return _Tracing(provider, tracer, SpanKind.CLIENT, StatusCode.ERROR)


def flush_traces(timeout_s: float = 10.0) -> bool:
    """Send the spans still batched (tests; a process about to exit does it by itself)."""
    tracing = _tracer()
    return tracing is None or tracing.provider.force_flush(int(timeout_s * 1000))


def step(name: str) -> Callable[[F], F]:
    """Decorate a job's step: `plan` and `synthesis` take the job (or its id) first,
    `subtask` the subtask's id. Log lines in it carry the ids; with tracing on it is a span
    (`baton.<name>`) holding its LLM calls' spans."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(target: Any, *args: Any, **kwargs: Any) -> Any:
            pk = getattr(target, "pk", target)
            key = "baton.subtask.id" if name == "subtask" else "baton.job.id"
            job_token = _job_id.set(None if name == "subtask" else pk)
            subtask_token = _subtask_id.set(pk if name == "subtask" else None)
            try:
                tracing = _tracer()
                if tracing is None:
                    return func(target, *args, **kwargs)
                attributes = {"baton.step": name, key: pk}
                with tracing.tracer.start_as_current_span(f"baton.{name}", attributes=attributes):
                    return func(target, *args, **kwargs)
            finally:
                _subtask_id.reset(subtask_token)
                _job_id.reset(job_token)

        return wrapper  # type: ignore[return-value]

    return decorate


def observes_llm_calls(failure: type[Exception]) -> Callable[[F], F]:
    """Decorate `calls.call_llm`: every call it makes is counted, timed and, with tracing on,
    a GenAI `chat` span. `failure` is the error a failed call raises (llm.LLMError); any
    other exception (a spent budget) means no call was made."""

    def decorate(call_llm: F) -> F:
        @functools.wraps(call_llm)
        def wrapper(**kwargs: Any) -> Any:
            started_ns = time.time_ns()
            try:
                call = call_llm(**kwargs)
            except failure as exc:
                _observe(kwargs, started_ns, None, exc)
                raise
            _observe(kwargs, started_ns, call, None)
            return call

        return wrapper  # type: ignore[return-value]

    return decorate


def _observe(kwargs: dict, started_ns: int, call: Any, exc: Any) -> None:
    try:
        agent, purpose, job_id = kwargs["agent"], kwargs["purpose"], kwargs["job_id"]
        model = call.model if call is not None else agent.model
        series = _series(agent.slug, model, str(purpose))
        if call is not None:
            latency = call.latency_s
            series.ok.inc()
            series.input_tokens.inc(call.prompt_tokens)
            series.output_tokens.inc(call.completion_tokens)
            if call.cost:
                series.cost.inc(float(call.cost))
        else:
            latency = exc.latency_s
            series.failed.inc()
        series.latency.observe(latency)
        if _job_id.get() is None:  # a subtask's step learns its job here
            _job_id.set(job_id)
        log.debug(
            "%s call of %s to %s: %s in %.2f s",
            purpose,
            agent.slug,
            model,
            "ok" if exc is None else f"failed ({exc})",
            latency,
        )
        tracing = _tracer()
        if tracing is not None:
            _call_span(tracing, kwargs, started_ns, call, exc)
    except Exception:
        log.warning("could not record an LLM call's telemetry", exc_info=True)


def _call_span(tracing: _Tracing, kwargs: dict, started_ns: int, call: Any, exc: Any) -> None:
    """The GenAI client span of one call, recorded once the call is over (a call refused
    for its budget never started, so has no span)."""
    from opentelemetry import trace

    agent = kwargs["agent"]
    model = call.model if call is not None else agent.model
    temperature = kwargs.get("temperature")
    provider = "openai" if settings.LLM_API_KEY else "baton.offline"
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.agent.name": agent.slug,
        "gen_ai.request.model": model,
        "gen_ai.request.temperature": agent.temperature if temperature is None else temperature,
        "baton.job.id": kwargs["job_id"],
        "baton.purpose": str(kwargs["purpose"]),
    }
    if not kwargs.get("budgeted", True):  # otherwise the budget may have lowered it
        attributes["gen_ai.request.max_tokens"] = agent.max_tokens
    if kwargs.get("subtask_id") is not None:
        attributes["baton.subtask.id"] = kwargs["subtask_id"]
    if call is not None:
        attributes["gen_ai.response.model"] = call.model
        attributes["gen_ai.usage.input_tokens"] = call.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = call.completion_tokens
        attributes["gen_ai.response.finish_reasons"] = [call.finish_reason or "stop"]
        attributes["baton.call.id"] = call.pk
    else:
        attributes["error.type"] = str(exc.status) if exc.status else type(exc).__name__
    parent = trace.get_current_span()
    if parent.is_recording():
        parent.set_attribute("baton.job.id", kwargs["job_id"])
    span = tracing.tracer.start_span(
        f"chat {model}", kind=tracing.client_kind, attributes=attributes, start_time=started_ns
    )
    if exc is not None:
        span.set_status(tracing.error, str(exc)[:200])
    span.end()


def tool_called(name: str, call_id: str, started_ns: int, error: str) -> None:
    """With tracing on, the GenAI `execute_tool` span of one tool call of a subtask's tool
    loop, in its step's span; recorded once the tool has answered."""
    tracing = _tracer()
    if tracing is None:
        return
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
    }
    if error:
        attributes["error.type"] = "tool_error"
    span = tracing.tracer.start_span(
        f"execute_tool {name}", attributes=attributes, start_time=started_ns
    )
    if error:
        span.set_status(tracing.error, error[:200])
    span.end()


# Logs


class StepIds(logging.Filter):
    """Stamps a record, as it is logged, with the job and subtask of the step running in
    this thread (unless the call gave them: `extra={"job_id": ...}`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        if getattr(record, "subtask_id", None) is None:
            record.subtask_id = _subtask_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line with timestamp, level, logger, message, and
    job_id / subtask_id when the record has them (StepIds)."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("job_id", "subtask_id"):
            if (value := getattr(record, key, None)) is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
