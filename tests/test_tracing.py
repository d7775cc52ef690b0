"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, every LLM call is a GenAI `chat`
span inside its step's span, sent over OTLP/HTTP; unset, tracing costs nothing."""

import os
import subprocess
import sys
import uuid

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agents import telemetry
from agents.models import Agent, JobStatus, LLMCall

from .inprocess import run_job, simulated_llm, team_on_a_model_of_its_own
from .otlp_collector import attributes
from .stack import ROOT

pytestmark = pytest.mark.django_db


def test_each_call_is_a_genai_span_inside_its_step(
    collector, settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    model = team_on_a_model_of_its_own(monkeypatch)
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)
    assert job.status == JobStatus.COMPLETED
    assert telemetry.flush_traces()

    assert set(collector.paths) == {"/v1/traces"}
    received = collector.spans()
    assert {resource["service.name"] for resource, _ in received} == {"baton-test"}
    spans = {span.span_id: span for _, span in received}
    chats = [s for s in spans.values() if s.name == f"chat {model}"]
    calls = {call.pk: call for call in LLMCall.objects.filter(job=job)}
    assert len(chats) == len(calls) >= 3  # a plan, a subtask, a synthesis at least
    step_of = {"plan": "baton.plan", "subtask": "baton.subtask", "synthesis": "baton.synthesis"}
    for chat in chats:
        attrs = attributes(chat.attributes)
        call = calls[attrs["baton.call.id"]]
        agent = Agent.objects.get(pk=call.agent_id)
        assert chat.kind == Span.SPAN_KIND_CLIENT
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == model
        assert attrs["gen_ai.usage.input_tokens"] == call.prompt_tokens > 0
        assert attrs["gen_ai.usage.output_tokens"] == call.completion_tokens > 0
        assert attrs["gen_ai.request.max_tokens"] == agent.max_tokens  # the job has no budget
        temperature = 0.3 if call.purpose == "plan" else agent.temperature
        assert attrs["gen_ai.request.temperature"] == pytest.approx(temperature)
        assert attrs["gen_ai.agent.name"] == agent.slug
        assert attrs["baton.job.id"] == job.pk
        assert attrs.get("baton.subtask.id") == call.subtask_id
        assert "error.type" not in attrs
        assert chat.end_time_unix_nano - chat.start_time_unix_nano >= call.latency_s * 1e9 * 0.99

        step = spans[chat.parent_span_id]  # the parent was received, in the same trace
        assert step.trace_id == chat.trace_id
        assert step.name == step_of[call.purpose]
        step_attrs = attributes(step.attributes)
        assert step_attrs["baton.job.id"] == job.pk
        if call.subtask_id is not None:
            assert step_attrs["baton.subtask.id"] == call.subtask_id
        assert step.start_time_unix_nano <= chat.start_time_unix_nano
        assert chat.end_time_unix_nano <= step.end_time_unix_nano


def test_a_failed_call_says_why(
    collector, settings, sent, monkeypatch, django_capture_on_commit_callbacks
):
    team_on_a_model_of_its_own(monkeypatch)
    model = f"unknown-{uuid.uuid4().hex[:8]}"  # the simulator answers 404
    Agent.objects.filter(slug="orchestrator").update(model=model)
    with simulated_llm(settings):
        job = run_job(sent, django_capture_on_commit_callbacks)
    assert job.status == JobStatus.FAILED
    assert telemetry.flush_traces()

    spans = {span.span_id: span for _, span in collector.spans()}
    (chat,) = [s for s in spans.values() if s.name == f"chat {model}"]
    attrs = attributes(chat.attributes)
    assert attrs["error.type"] == "404"
    assert chat.status.code == Status.STATUS_CODE_ERROR
    assert "gen_ai.usage.input_tokens" not in attrs
    assert spans[chat.parent_span_id].name == "baton.plan"


def test_without_an_endpoint_no_tracing_is_set_up(tmp_path):
    # A process of its own: this one may have set tracing up for the tests above. (redis-py
    # imports the metrics part of the SDK when it is installed; Baton loads no tracing.)
    script = (
        "import sys, django; django.setup()\n"
        "from agents import steps, telemetry\n"
        "assert telemetry.step('synthesis')(lambda job_id: job_id * 2)(21) == 42\n"
        "assert telemetry._tracer() is None\n"
        "loaded = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m.startswith(loaded)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"DJANGO_SETTINGS_MODULE": "orchestrator_site.settings", "BATON_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
