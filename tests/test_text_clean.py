"""Text from outside is stored without what PostgreSQL refuses (NUL in text, \\u0000 in
jsonb): a model's answer, a tool's result and a webhook endpoint's answer holding a NUL are
stored cleaned, and the step or the delivery goes on. Before, the save raised on
PostgreSQL and the step crashed at every attempt (on SQLite these pass either way)."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from agents import llm, steps, tools
from agents.models import (
    Agent,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    Subtask,
    SubtaskStatus,
    ToolCall,
)
from agents.text import clean, clean_json
from webhooks import tasks, triggers
from webhooks.models import Delivery, DeliveryStatus, Endpoint

from .inprocess import died_after_asking, simulated_llm
from .webhook_receiver import running_receiver


def test_clean_drops_nul_and_replaces_lone_surrogates():
    assert clean("a\x00b\ud800c") == "ab\ufffdc"
    assert clean("plain é text") == "plain é text"


def test_clean_json_cleans_every_string_keys_included_however_deep():
    value = {"k\x00": ["x\x00", 1, None, {"deep": ("t\x00",)}], "n": 2.5}
    assert clean_json(value) == {"k": ["x", 1, None, {"deep": ["t"]}], "n": 2.5}
    deep: list = ["\x00"]
    for _ in range(5000):  # past the interpreter's recursion limit
        deep = [deep]
    cleaned = clean_json(deep)
    for _ in range(5000):
        cleaned = cleaned[0]
    assert cleaned == [""]


def test_an_llm_error_quoting_a_nul_is_storable():
    exc = llm.LLMError("HTTP 500: \x00", body="\x00body")
    assert str(exc) == "HTTP 500: " and exc.body == "body"


@pytest.fixture
def simulator(settings):
    """The simulator, each of its answers ending in a NUL."""
    with simulated_llm(settings, text_suffix="\x00") as server:
        yield server


def queued_subtask(tools: list[str]) -> Subtask:
    agent = Agent.objects.create(
        name="Researcher", slug="researcher", specialties=["research"], tools=tools
    )
    job = Job.objects.create(
        title="Fetch", description="Fetch it.", status=JobStatus.WORKING, planned_at=timezone.now()
    )
    SharedState.objects.create(job=job)
    return Subtask.objects.create(
        job=job,
        key="research",
        type="research",
        payload={"description": "fetch it"},
        agent=agent,
        status=SubtaskStatus.QUEUED,
    )


@pytest.mark.django_db
def test_a_model_answer_holding_a_nul_is_stored_and_the_subtask_completes(simulator, sent):
    sub = queued_subtask(tools=[])

    steps.run_subtask(sub.pk)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    (call,) = LLMCall.objects.filter(subtask=sub)
    assert call.response and "\x00" not in call.response
    assert sub.result == call.response


@contextmanager
def serving(body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/logo.png"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
def test_a_tool_result_holding_a_nul_is_stored_and_the_subtask_completes(simulator, sent, settings):
    settings.TOOL_HTTP_ALLOWLIST = ["127.0.0.1"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = True
    agent = Agent.objects.create(
        name="Researcher", slug="researcher", specialties=["research"], tools=["http_get"]
    )
    with serving(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") as url:
        sub = died_after_asking(agent, "http_get", {"url": url})
        steps.run_subtask(sub.pk)

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.COMPLETED, sub.error
    (row,) = ToolCall.objects.filter(subtask=sub)
    assert row.status == ToolCall.Status.DONE and row.error == ""
    assert "PNG" in row.result and "\x00" not in row.result
    final = LLMCall.objects.filter(subtask=sub).order_by("pk").last()
    assert json.dumps(final.messages)  # the tool message, stored as jsonb


@pytest.mark.django_db
def test_a_webhook_answer_holding_a_nul_is_logged_and_the_delivery_moves_on(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_S = 2
    with running_receiver() as receiver:
        receiver.answer(200, body="ok\x00thanks")
        Endpoint.objects.create(url=receiver.url, events=["job.completed"])
        job = Job.objects.create(title="J", description="D", status=JobStatus.COMPLETED)
        [delivery_id] = triggers.create_deliveries("job", job.pk, JobStatus.COMPLETED, "k1")
        tasks.deliver.apply(args=(delivery_id, 1))

    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.DELIVERED
    (attempt,) = delivery.attempt_log.all()
    assert attempt.response_excerpt == "okthanks"


@pytest.mark.django_db
def test_a_tool_argument_escaping_a_nul_is_written_without_it():
    job = Job.objects.create(title="J", description="D")
    SharedState.objects.create(job=job)
    context = tools.Context(job_id=job.pk, author="a/s", grants=("write_state",))

    outcome = tools.run("write_state", '{"key": "draft\\u0000", "value": ["x\\u0000"]}', context)

    assert outcome.error == "" and outcome.result.startswith("Written")
    assert SharedState.objects.get(job=job).data["draft"] == ["x"]
