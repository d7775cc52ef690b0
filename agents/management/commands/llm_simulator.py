"""An OpenAI-compatible LLM simulator for load tests and fault drills.

Answers with the offline model, after a configurable latency, and injects the faults real
providers have: 500s, 429s with Retry-After, hangs, prose- or fence-wrapped JSON, broken
JSON and truncated answers. GET /stats reports what it saw.

Offered tools (`tools`), it first answers with a `tool_calls` message for the first tool, then,
once tool results follow the last user message, with text.

Asked to stream (`stream: true`), it sends the same answer as server-sent events in the
OpenAI format, in pieces spread over its latency, with a usage chunk when
`stream_options.include_usage` asks for one; `--refuse-stream` answers such a request with a
400, as providers without streaming do, and `--cut-stream-rate` drops the connection halfway.

Judge requests (agents.judging's marker) get the offline judge's deterministic score, as JSON
or, with `--judge-style`, as real judges write it: in prose, in a code fence, out of ten, or a
mix of these chosen at random; `refusal` gives no score at all.

Plans are the offline model's chain (research → coding → review) unless `--plan-shape
one-dependency` asks for the benchmark's shape: coding after research, review on its own.
"""

import hashlib
import json
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import BaseCommand

from agents import offline, tokens

CHAT_PATHS = ("/chat/completions", "/v1/chat/completions")
WRAPS = ("none", "prose", "fence")
PLAN_SHAPES = ("chain", "one-dependency")
# "refusal" answers with no score at all, as judges now and then do; "mixed" never refuses.
JUDGE_STYLES = ("none", "prose", "fence", "out-of-ten", "refusal", "mixed")
UNKNOWN_MODEL_PREFIX = "unknown-"
# A streamed answer's text comes in about this many pieces, its arguments in three.
STREAM_PIECES = 8
ARGUMENT_PIECES = 3
# The share of the latency before the first piece; the rest is spread between the pieces.
FIRST_PIECE_SHARE = 0.2


@dataclass
class SimulatorConfig:
    latency_ms: float = 0
    jitter_ms: float = 0
    seed: int | None = None
    error_rate: float = 0
    rate_limit_rate: float = 0
    retry_after: float = 1
    hang_rate: float = 0
    hang_s: float = 600
    wrap: str = "none"
    invalid_json_rate: float = 0
    truncate_rate: float = 0
    # HTTP 200 with a page that is no completion and quotes the request's headers, as a
    # misconfigured proxy in front of a provider does.
    garbage_rate: float = 0
    # When set, only this key is accepted (401 otherwise, echoing the key as OpenAI does).
    api_key: str = ""
    plan_shape: str = "chain"
    # How judge answers are written (JUDGE_STYLES): "mixed" picks one per answer.
    judge_style: str = "none"
    # A 400 for `stream: true`, as providers that do not stream answer.
    refuse_stream: bool = False
    # A streamed answer cut halfway: the connection drops, no [DONE].
    cut_stream_rate: float = 0
    # Appended to every text answer: "\x00", say, which providers do send (a NUL byte).
    text_suffix: str = ""


class Stats:
    FIELDS = (
        "requests",
        "in_flight",
        "peak_in_flight",
        "errors",
        "rate_limited",
        "hangs",
        "tool_calls",
        "streamed",
        "cut_streams",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self, peak_only: bool = False) -> None:
        with self._lock:
            # in_flight is live, so a reset mid-load keeps it; the peak restarts from it.
            in_flight = getattr(self, "in_flight", 0)
            if not peak_only:
                for field in self.FIELDS:
                    setattr(self, field, 0)
                # How many times each distinct request was answered with a completion: a
                # request answered twice was paid for twice.
                self.answered: Counter[str] = Counter()
            self.in_flight = self.peak_in_flight = in_flight

    def answer(self, messages: list) -> None:
        digest = hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.answered[digest] += 1

    def add(self, field: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + amount)
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            twice = sum(1 for n in self.answered.values() if n > 1)
            return {
                **{field: getattr(self, field) for field in self.FIELDS},
                "answered_twice": twice,
            }


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of clients connect at once under load; the default backlog of 5 drops them.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], config: SimulatorConfig) -> None:
        super().__init__(address, SimulatorHandler)
        self.config = config
        self.stats = Stats()
        self.stopping = threading.Event()
        self._random = random.Random(config.seed)
        self._random_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.uniform(0, 1) < rate

    def choice(self, options: tuple[str, ...]) -> str:
        with self._random_lock:
            return self._random.choice(options)

    def uniform(self, low: float, high: float) -> float:
        with self._random_lock:
            return self._random.uniform(low, high)

    def shutdown(self) -> None:
        self.stopping.set()  # releases hung requests
        super().shutdown()


class SimulatorHandler(BaseHTTPRequestHandler):
    server: SimulatorServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers and httpx's pool expect
    disable_nagle_algorithm = True
    wbufsize = -1  # headers and body leave in one write

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/stats", "/v1/stats"):
            self._send_json(200, self.server.stats.snapshot())
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path in ("/stats/reset", "/v1/stats/reset"):
            self.server.stats.reset(peak_only="only=peak" in self.path)
            self._send_json(200, self.server.stats.snapshot())
        elif path in CHAT_PATHS:
            stats = self.server.stats
            stats.add("requests")
            stats.add("in_flight")
            try:
                self._chat(raw)
            finally:
                stats.add("in_flight", -1)
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def _chat(self, raw: bytes) -> None:
        config, server = self.server.config, self.server
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._error(401, "missing bearer token in the Authorization header")
        if config.api_key and auth[7:].strip() != config.api_key:
            return self._error(401, f"Incorrect API key provided: {auth[7:].strip()}")
        try:
            body = json.loads(raw)
            messages = body["messages"]
            model = body["model"]
            tools = body.get("tools") or []
            stream = body.get("stream") is True
            usage_chunk = stream and (body.get("stream_options") or {}).get("include_usage") is True
            if not isinstance(model, str) or not model or not isinstance(messages, list):
                raise ValueError
            [t["function"]["name"] for t in tools if t["type"] == "function"]  # well formed
        except (ValueError, KeyError, TypeError):
            return self._error(
                400, "the body must be JSON with a model, a messages list and valid tools"
            )
        if model.startswith(UNKNOWN_MODEL_PREFIX):
            # A deterministic permanent error, for drills: as providers answer unknown models.
            return self._error(404, f"The model `{model}` does not exist")
        if stream and config.refuse_stream:
            return self._error(400, "stream: streaming is not supported for this model")

        if server.chance(config.hang_rate):
            server.stats.add("hangs")
            self._hang(config.hang_s)
            self.close_connection = True
            return None
        delay_s = max(0.0, config.latency_ms + server.uniform(-config.jitter_ms, config.jitter_ms))
        delay_s /= 1000
        # A stream's first piece comes early; the rest of the latency is spread between pieces.
        first_s = delay_s * FIRST_PIECE_SHARE if stream else delay_s
        if first_s > 0:
            time.sleep(first_s)
        if server.chance(config.error_rate):
            return self._error(500, "simulated internal server error")
        if server.chance(config.rate_limit_rate):
            server.stats.add("rate_limited")
            return self._send_json(
                429,
                {"error": {"message": "simulated rate limit", "type": "rate_limit_exceeded"}},
                {"Retry-After": f"{config.retry_after:g}"},
            )
        if server.chance(config.garbage_rate):
            page = f"<html>upstream unavailable; request was: Authorization: {auth}</html>"
            return self._send_bytes(200, page.encode(), "text/html")
        calls = offline.tool_calls(messages, tools)
        answer = _tool_call(model, calls, messages) if calls else self._completion(model, messages)
        if calls:
            server.stats.add("tool_calls")

        def answered() -> None:
            # Counted before the client can have read the whole answer, so that whoever
            # reads the stats after a call sees it counted.
            if not calls:
                server.stats.answer(messages)

        if stream:
            server.stats.add("streamed")
            self._stream(answer, usage_chunk, delay_s - first_s, answered)
        else:
            answered()
            self._send_json(200, answer)
        return None

    def _stream(
        self, answer: dict[str, Any], usage_chunk: bool, spread_s: float, answered: Callable
    ) -> bool:
        """Send `answer` as a stream of chunks over `spread_s`, calling `answered` before its
        last byte; False when it was cut (then it was not answered)."""
        chunks = _chunks(answer, usage_chunk)
        pieces = sum(1 for chunk in chunks if chunk.get("choices"))
        cut_at = (
            len(chunks) // 2 if self.server.chance(self.server.config.cut_stream_rate) else None
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for number, chunk in enumerate(chunks):
            if number == cut_at:
                # Dropped without the chunked body's end: the client sees a broken stream.
                self.server.stats.add("cut_streams")
                self.close_connection = True
                self.wfile.flush()
                return False
            if chunk.get("choices") and spread_s > 0:
                time.sleep(spread_s / pieces)
            self._send_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._send_chunk(b"data: [DONE]\n\n")
        answered()
        self._send_chunk(b"")  # the body's end: only now has the client read it all
        return True

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _hang(self, limit_s: float) -> None:
        """Answer nothing until the client gives up (closes the connection), the limit
        passes or the server stops. A request its client abandoned is no longer in flight:
        counting it would charge the client's next call to a slot it already released."""
        deadline = time.monotonic() + limit_s
        while not self.server.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.1))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return  # EOF: the client timed out and closed the connection
                except OSError:
                    return
                self.server.stopping.wait(0.01)  # pipelined bytes; keep hanging

    def _completion(self, model: str, messages: list[dict]) -> dict[str, Any]:
        config, server = self.server.config, self.server
        text = offline.respond(messages, label="simulator")
        if offline.is_decomposition(messages):
            if config.plan_shape == "one-dependency":
                text = _one_dependency(text)
            if server.chance(config.invalid_json_rate):
                # A trailing comma and no closing brackets: what models really produce.
                text = text.rstrip("]}") + ","
            if config.wrap == "prose":
                text = f"Sure! Here is the plan:\n{text}\nLet me know if it needs changes."
            elif config.wrap == "fence":
                text = f"```json\n{text}\n```"
        elif offline.is_judge(messages):
            style = config.judge_style
            if style == "mixed":
                style = server.choice(("none", "prose", "fence", "out-of-ten"))
            text = _judgement(text, style)
        text += config.text_suffix
        finish_reason = "stop"
        if server.chance(config.truncate_rate):
            text, finish_reason = text[: len(text) // 2], "length"
        message = {"role": "assistant", "content": text}
        return _answer(model, messages, message, finish_reason, tokens.estimate_tokens(text))

    def _error(self, status: int, message: str) -> None:
        self.server.stats.add("errors")
        self._send_json(status, {"error": {"message": message, "code": status}})

    def _send_json(self, status: int, data: dict, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(data).encode(), "application/json", headers)

    def _send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # thousands of requests a second would drown the terminal


def _tool_call(model: str, calls: list[dict], messages: list) -> dict[str, Any]:
    """The answer of a model that calls tools instead of writing text."""
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    return _answer(model, messages, message, "tool_calls", 10)


def _answer(
    model: str, messages: list, message: dict, finish_reason: str, completion_tokens: int
) -> dict[str, Any]:
    """A chat completion in the OpenAI format, its prompt's tokens estimated."""
    prompt_tokens = tokens.estimate_tokens(tokens.messages_text(messages))
    return {
        "id": f"chatcmpl-sim-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _chunks(answer: dict[str, Any], usage_chunk: bool) -> list[dict[str, Any]]:
    """A completion as the chunks of its stream, in the OpenAI format: the role, the text
    (or each tool call: its name, then its arguments in pieces), the finish_reason, and the
    usage in a last chunk with no choices when asked for."""
    [choice] = answer["choices"]
    message = choice["message"]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [
        {"content": piece} for piece in offline.pieces(message.get("content") or "", STREAM_PIECES)
    ]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": function["name"]}}]})
        arguments = function["arguments"]
        size = -(-len(arguments) // ARGUMENT_PIECES) or 1
        for start in range(0, len(arguments), size):
            piece = arguments[start : start + size]
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    frame = {key: answer[key] for key in ("id", "created", "model")}
    frame["object"] = "chat.completion.chunk"
    chunks = [
        {**frame, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        for delta in deltas
    ]
    chunks.append(
        {**frame, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}
    )
    if usage_chunk:
        chunks.append({**frame, "choices": [], "usage": answer["usage"]})
    return chunks


def _judgement(verdict_json: str, style: str) -> str:
    """The offline judge's verdict written the way `style` says real judges write it."""
    if style == "prose":
        return f"Here is my evaluation of the output.\n{verdict_json}\nI hope this helps."
    if style == "fence":
        return f"```json\n{verdict_json}\n```"
    if style == "refusal":
        return "I am sorry, but I cannot evaluate this output."
    if style == "out-of-ten":
        verdict = json.loads(verdict_json)
        verdict["score"] = f"{round(verdict['score'] * 10, 1):g}/10"
        return f"Score: {verdict['score']}\n\n{json.dumps(verdict)}"
    return verdict_json


def _one_dependency(plan_json: str) -> str:
    """The offline plan with only its first dependency kept: 3 subtasks, one edge."""
    plan = json.loads(plan_json)
    for subtask in plan["subtasks"][2:]:
        subtask["depends_on"] = []
    return json.dumps(plan)


def make_server(
    config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> SimulatorServer:
    """A bound, not yet serving simulator; port 0 picks a free port."""
    return SimulatorServer((host, port), config or SimulatorConfig())


class Command(BaseCommand):
    help = "Run an OpenAI-compatible LLM simulator with configurable latency and faults."
    # It needs nothing from the project, so a half-configured site can still drill faults.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
        parser.add_argument("--latency-ms", type=float, default=0)
        parser.add_argument("--jitter-ms", type=float, default=0)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--error-rate", type=float, default=0, help="answer 500")
        parser.add_argument("--rate-limit-rate", type=float, default=0, help="answer 429")
        parser.add_argument("--retry-after", type=float, default=1, help="seconds, with 429")
        parser.add_argument("--hang-rate", type=float, default=0, help="never answer")
        parser.add_argument("--wrap", choices=WRAPS, default="none", help="plan JSON wrapping")
        parser.add_argument("--invalid-json-rate", type=float, default=0)
        parser.add_argument("--truncate-rate", type=float, default=0, help="finish_reason length")
        parser.add_argument(
            "--garbage-rate", type=float, default=0, help="200 with a page that is no completion"
        )
        parser.add_argument("--api-key", default="", help="accept only this key")
        parser.add_argument(
            "--refuse-stream", action="store_true", help="answer stream: true with a 400"
        )
        parser.add_argument(
            "--cut-stream-rate", type=float, default=0, help="drop a streamed answer halfway"
        )
        parser.add_argument(
            "--text-suffix",
            default="",
            help="appended to every text answer (Python escapes: \\x00 is a NUL)",
        )
        parser.add_argument(
            "--judge-style",
            choices=JUDGE_STYLES,
            default="none",
            help="how judge answers are written; mixed: one of the others at random",
        )
        parser.add_argument(
            "--plan-shape",
            choices=PLAN_SHAPES,
            default="chain",
            help="chain: research → coding → review; one-dependency: review runs alone",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = SimulatorConfig(
            latency_ms=options["latency_ms"],
            jitter_ms=options["jitter_ms"],
            seed=options["seed"],
            error_rate=options["error_rate"],
            rate_limit_rate=options["rate_limit_rate"],
            retry_after=options["retry_after"],
            hang_rate=options["hang_rate"],
            wrap=options["wrap"],
            invalid_json_rate=options["invalid_json_rate"],
            garbage_rate=options["garbage_rate"],
            truncate_rate=options["truncate_rate"],
            api_key=options["api_key"],
            plan_shape=options["plan_shape"],
            judge_style=options["judge_style"],
            refuse_stream=options["refuse_stream"],
            cut_stream_rate=options["cut_stream_rate"],
            text_suffix=options["text_suffix"].encode().decode("unicode_escape"),
        )
        server = make_server(config, options["host"], options["port"])
        host, port = server.server_address[:2]
        self.stdout.write(f"llm_simulator listening on http://{host}:{port}")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stopping.set()
            server.server_close()
