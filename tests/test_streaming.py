"""Streamed calls: the client against the simulator (and a few hand-made providers), the
coalescer that sends a running subtask's text to its job's page, and call_llm's records."""

import asyncio
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings

from agents import calls, events, llm, models, offline, streaming, tokens
from agents.models import Agent, Job, LLMCall, ModelPrice, Subtask
from tests.simulator_fixture import running_simulator

KEY = "sk-test-0123456789-secret"
MESSAGES = [
    {"role": "system", "content": "You are a researcher."},
    {"role": "user", "content": "Summarise the CAP theorem"},
]
PLANNING = [
    {"role": "system", "content": "You are a task-decomposition expert."},
    {"role": "user", "content": "Build a chess engine"},
]
READ_STATE = {
    "type": "function",
    "function": {
        "name": "read_state",
        "parameters": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["key", "limit"],
        },
    },
}


@contextmanager
def provider(base_url: str, **more: object) -> Iterator[None]:
    values = {"LLM_API_KEY": KEY, "LLM_BASE_URL": base_url, "LLM_TIMEOUT_S": 5, "REDIS_URL": ""}
    with override_settings(**{**values, **more}):
        yield


def streamed(**kwargs: object) -> tuple[llm.Completion, list[str]]:
    pieces: list[str] = []
    completion = llm.complete(model="gpt-4.1", on_text=pieces.append, **kwargs)
    return completion, pieces


def same_answer(one: llm.Completion, other: llm.Completion) -> None:
    assert one.text == other.text
    assert one.prompt_tokens == other.prompt_tokens
    assert one.completion_tokens == other.completion_tokens
    assert one.finish_reason == other.finish_reason
    assert one.http_status == other.http_status


@pytest.mark.parametrize("messages", [MESSAGES, PLANNING], ids=["answer", "plan"])
def test_a_streamed_answer_is_the_plain_answer(messages):
    with running_simulator() as sim, provider(sim.base_url):
        plain = llm.complete(model="gpt-4.1", messages=messages)
        completion, pieces = streamed(messages=messages)
        stats = sim.stats.snapshot()

    same_answer(completion, plain)
    assert len(pieces) > 1
    assert "".join(pieces) == completion.text
    assert stats["streamed"] == 1
    assert stats["requests"] == 2


def test_a_truncated_stream_says_so():
    with running_simulator(truncate_rate=1) as sim, provider(sim.base_url):
        completion, pieces = streamed(messages=MESSAGES)
    assert completion.finish_reason == "length"
    assert "".join(pieces) == completion.text


def test_tool_calls_are_streamed_too():
    with running_simulator() as sim, provider(sim.base_url):
        plain = llm.complete(model="gpt-4.1", messages=MESSAGES, tools=[READ_STATE])
        completion, pieces = streamed(messages=MESSAGES, tools=[READ_STATE])
        stats = sim.stats.snapshot()

    same_answer(completion, plain)
    assert completion.finish_reason == "tool_calls"
    assert pieces == []  # no text: the model asked for a tool
    [call] = completion.tool_calls
    [plain_call] = plain.tool_calls
    assert call["id"].startswith("call_")
    assert call["function"] == plain_call["function"]
    assert json.loads(call["function"]["arguments"]) == {"key": "simulated", "limit": 1}
    assert stats["streamed"] == 1
    assert stats["tool_calls"] == 2


def test_a_provider_that_refuses_to_stream_is_asked_plainly_from_then_on():
    with running_simulator(refuse_stream=True) as sim, provider(sim.base_url):
        plain = llm.complete(model="gpt-4.1", messages=MESSAGES)
        first, first_pieces = streamed(messages=MESSAGES)
        after_first = sim.stats.snapshot()
        second, second_pieces = streamed(messages=MESSAGES)
        after_second = sim.stats.snapshot()

    same_answer(first, plain)
    same_answer(second, plain)
    # The text came in one piece, once the plain answer was in.
    assert first_pieces == second_pieces == [plain.text]
    assert after_first["requests"] == 3  # plain, refused, plain again
    assert after_first["errors"] == 1
    assert after_second["requests"] == 4  # remembered: no refused attempt before it
    assert after_second["errors"] == 1
    assert after_second["streamed"] == 0


class PlainProvider(BaseHTTPRequestHandler):
    """Ignores `stream`: always answers one JSON completion."""

    bodies: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        payload = json.dumps(
            {
                "choices": [
                    {"message": {"role": "assistant", "content": "plain"}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


class SSEProvider(BaseHTTPRequestHandler):
    """Streams the events of `script` (raw `data:` lines), then ends the body cleanly."""

    script: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = "".join(f"data: {line}\n\n" for line in type(self).script).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def chunk(delta: dict, finish_reason: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})


def test_a_provider_that_answers_plainly_is_taken_at_its_word():
    PlainProvider.bodies = []
    with serving(PlainProvider) as url, provider(url):
        first, pieces = streamed(messages=MESSAGES)
        second, _ = streamed(messages=MESSAGES)

    assert first.text == second.text == "plain"
    assert (first.prompt_tokens, first.completion_tokens) == (11, 1)
    assert pieces == ["plain"]
    assert [body.get("stream") for body in PlainProvider.bodies] == [True, None]
    assert PlainProvider.bodies[0]["stream_options"] == {"include_usage": True}


def test_a_stream_without_usage_has_its_tokens_estimated():
    SSEProvider.script = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Partition "}),
        chunk({"content": "tolerance."}),
        chunk({}, "stop"),
        "[DONE]",
    ]
    with serving(SSEProvider) as url, provider(url):
        completion, pieces = streamed(messages=MESSAGES)
    assert pieces == ["Partition ", "tolerance."]
    assert completion.text == "Partition tolerance."
    assert completion.completion_tokens == tokens.estimate_tokens("Partition tolerance.")
    assert completion.prompt_tokens == tokens.estimate_tokens(tokens.messages_text(MESSAGES))
    assert completion.finish_reason == "stop"


def test_tool_call_pieces_are_put_together_by_index():
    SSEProvider.script = [
        chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "second"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "first"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x"'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls"),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}),
        "[DONE]",
    ]
    with serving(SSEProvider) as url, provider(url):
        completion, _ = streamed(messages=MESSAGES)
    assert [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in completion.tool_calls
    ] == [
        ("a", "first", '{"x": 1}'),
        ("b", "second", "{}"),
    ]
    assert (completion.prompt_tokens, completion.completion_tokens) == (5, 7)


@pytest.mark.parametrize(
    "script, says",
    [
        ([chunk({"content": "Half an"})], "ended before the answer did"),
        ([chunk({"content": "Half"}), json.dumps({"error": {"message": f"bad {KEY}"}})], "error"),
        ([chunk({"content": "Half"}), "{not json"], "no completion"),
    ],
    ids=["no-finish", "error-event", "garbage"],
)
def test_a_stream_that_breaks_off_can_be_retried(script, says):
    SSEProvider.script = script
    with serving(SSEProvider) as url, provider(url):
        with pytest.raises(llm.LLMError) as caught:
            streamed(messages=MESSAGES)
    error = caught.value
    assert says in str(error)
    assert not error.permanent
    assert KEY not in str(error) and KEY not in error.body


def test_a_stream_cut_in_the_middle_can_be_retried():
    with running_simulator(cut_stream_rate=1, api_key=KEY) as sim, provider(sim.base_url):
        pieces: list[str] = []
        with pytest.raises(llm.LLMError) as caught:
            llm.complete(model="gpt-4.1", messages=MESSAGES, on_text=pieces.append)
        stats = sim.stats.snapshot()
    error = caught.value
    assert not error.permanent
    assert error.status is None
    assert KEY not in str(error)
    assert pieces  # some text came before the cut
    assert stats["cut_streams"] == 1
    assert stats["answered_twice"] == 0


def test_with_streaming_off_nothing_streams():
    with running_simulator() as sim, provider(sim.base_url, LLM_STREAM=False):
        completion, pieces = streamed(messages=MESSAGES)
        stats = sim.stats.snapshot()
    assert completion.text.startswith("[simulator]")
    assert pieces == []
    assert stats["streamed"] == 0


def test_the_offline_model_streams_in_pieces():
    with override_settings(LLM_API_KEY="", REDIS_URL=""):
        plain = llm.complete(model="m", messages=MESSAGES)
        completion, pieces = streamed(messages=MESSAGES)
    assert completion.text == plain.text
    assert len(pieces) > 1
    assert "".join(pieces) == completion.text


def test_the_coalescer_sends_a_few_updates_a_second():
    sent: list[str] = []
    coalescer = streaming.Coalescer("job-1", 7, lambda group, subtask, text: sent.append(text))
    started = time.monotonic()
    pieces = [f"w{n} " for n in range(400)]
    for piece in pieces:
        coalescer(piece)
        time.sleep(0.002)
    elapsed = time.monotonic() - started
    coalescer.finish()

    # The first piece at once, then one send per window at most, and the end.
    assert 2 <= len(sent) <= elapsed / streaming.EVERY_S + 2
    assert sent[0] == "w0 "
    assert sent[-1] == "".join(pieces)
    assert all(later.startswith(earlier) for earlier, later in zip(sent, sent[1:], strict=False))
    coalescer.finish()  # nothing new: nothing sent
    assert len(sent) == coalescer.sends


@pytest.fixture(params=["standalone", "redis"])
def presence(request, settings) -> Iterator[str]:
    """Where pages' presence is kept: this process, or Redis (skipped where none answers)."""
    settings.REDIS_URL = ""
    if request.param == "redis":
        url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError:
            pytest.skip(f"Redis is not reachable at {url}")
        settings.REDIS_URL = url
    streaming._snapshot = (float("-inf"), frozenset())  # read the presence afresh
    yield request.param


def test_a_call_streams_only_while_its_job_is_watched(settings, presence):
    job_id = random.randrange(10**9, 10**10)  # a group of the test's own in a shared Redis
    group = events.job_group(job_id)
    assert streaming.for_call(job_id, 1) is None
    events.watch(group, +1)
    try:
        if presence == "redis":  # this process's copy is a second old at most: read anew
            assert streaming.for_call(job_id, 1) is None
            streaming._snapshot = (float("-inf"), frozenset())
        assert isinstance(streaming.for_call(job_id, 1), streaming.Coalescer)
        settings.LLM_STREAM = False
        assert streaming.for_call(job_id, 1) is None
    finally:
        events.watch(group, -1)
        if presence == "redis":
            client = redis.Redis.from_url(settings.REDIS_URL)
            client.zrem(events.WATCHED_SET, group)
            client.delete(events.WATCHED_PREFIX + group)


@pytest.mark.django_db
def test_a_watched_subtask_call_stores_what_a_plain_call_stores(settings, monkeypatch):
    model = f"test-{uuid.uuid4().hex[:10]}"
    ModelPrice.objects.create(
        model=model, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00")
    )
    monkeypatch.setattr(models._price_cache, "_read_at", float("-inf"))
    agent = Agent.objects.create(name="A", slug="a", specialties=["research"], model=model)
    job = Job.objects.create(title="J", description="d")
    sub = Subtask.objects.create(job=job, key="research", type="research", status="working")
    group = events.job_group(job.pk)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)

    with running_simulator(latency_ms=300) as sim:
        settings.LLM_BASE_URL, settings.LLM_API_KEY, settings.REDIS_URL = sim.base_url, KEY, ""
        call = dict(agent=agent, job_id=job.pk, purpose="subtask", subtask_id=sub.pk)
        plain = calls.call_llm(messages=MESSAGES, **call)
        events.watch(group, +1)
        try:
            live = calls.call_llm(messages=MESSAGES, **call)
        finally:
            events.watch(group, -1)
        stats = sim.stats.snapshot()

    assert stats["streamed"] == 1
    plain.refresh_from_db()
    live.refresh_from_db()
    assert live.pk != plain.pk
    for field in ("response", "prompt_tokens", "completion_tokens", "cost", "finish_reason"):
        assert getattr(live, field) == getattr(plain, field), field
    assert live.cost > 0
    assert LLMCall.objects.filter(subtask=sub).count() == 2

    # What the job's group heard: the text so far, growing, to the whole answer.
    heard = async_to_sync(drain)(layer, channel, f"<!--text {sub.pk}-->{live.response}")
    assert all(m.startswith(f"<!--text {sub.pk}-->") for m in heard)
    assert 2 <= len(heard) < len(offline.pieces(live.response))  # coalesced


async def drain(layer, channel: str, until: str) -> list[str]:
    heard: list[str] = []
    while not heard or heard[-1] != until:
        heard.append((await asyncio.wait_for(layer.receive(channel), 5))["html"])
    return heard


class DrippingStream(BaseHTTPRequestHandler):
    """A stream whose pieces come quickly enough for each read, but never end."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(f"data: {chunk({'content': 'drip '})}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up

    def log_message(self, *args: object) -> None:
        pass


def test_the_timeout_bounds_a_whole_stream():
    with serving(DrippingStream) as url, provider(url, LLM_TIMEOUT_S=1):
        with pytest.raises(llm.LLMError) as caught:
            streamed(messages=MESSAGES)
    assert "timed out" in str(caught.value)
    assert not caught.value.permanent
    assert caught.value.latency_s < 5  # far from the 10 s the drip would take


def test_another_bad_request_is_no_refusal_to_stream():
    with running_simulator() as sim, provider(sim.base_url):
        with pytest.raises(llm.LLMError) as caught:
            streamed(messages=MESSAGES, tools=[{"type": "function"}])  # malformed: a 400
        completion, pieces = streamed(messages=MESSAGES)
        stats = sim.stats.snapshot()
    assert caught.value.status == 400
    assert caught.value.permanent
    assert len(pieces) > 1  # still streamed afterwards
    assert stats["requests"] == 2
    assert stats["streamed"] == 1
