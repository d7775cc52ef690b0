import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from agents import llm
from tests.simulator_fixture import running_simulator

KEY = "sk-test-0123456789-secret"
MESSAGES = [
    {"role": "system", "content": "You are a researcher."},
    {"role": "user", "content": "Summarise the CAP theorem"},
]


@contextmanager
def provider(base_url: str, key: str = KEY, timeout: float = 5) -> Iterator[None]:
    # REDIS_URL off: these tests are about the client, not the shared limiter.
    with override_settings(
        LLM_API_KEY=key, LLM_BASE_URL=base_url, LLM_TIMEOUT_S=timeout, REDIS_URL=""
    ):
        yield


def call_failing(model: str = "gpt-4.1") -> llm.LLMError:
    with pytest.raises(llm.LLMError) as caught:
        llm.complete(model=model, messages=MESSAGES)
    error = caught.value
    assert KEY not in str(error)
    assert KEY not in error.body
    return error


def test_it_answers_offline_without_a_key():
    with override_settings(LLM_API_KEY="", REDIS_URL=""):
        assert llm.is_offline()
        completion = llm.complete(model="gpt-4.1", messages=MESSAGES)

    assert completion.text.startswith("[offline model]")
    assert completion.http_status is None
    assert completion.finish_reason == "stop"
    assert completion.prompt_tokens > 0
    assert completion.completion_tokens > 0


def test_it_calls_the_provider_and_reads_usage():
    with running_simulator() as sim, provider(sim.base_url):
        assert not llm.is_offline()
        completion = llm.complete(model="gpt-4.1", messages=MESSAGES)

    assert completion.text.startswith("[simulator]")
    assert "Summarise the CAP theorem" in completion.text
    assert completion.http_status == 200
    assert completion.finish_reason == "stop"
    assert (
        completion.prompt_tokens == (len(MESSAGES[0]["content"] + MESSAGES[1]["content"]) + 4) // 4
    )
    assert completion.completion_tokens == (len(completion.text) + 3) // 4
    assert completion.latency_s > 0


def test_it_measures_latency():
    with running_simulator(latency_ms=150) as sim, provider(sim.base_url):
        completion = llm.complete(model="gpt-4.1", messages=MESSAGES)
    assert 0.15 <= completion.latency_s < 1


def test_it_reports_truncation():
    with running_simulator(truncate_rate=1) as sim, provider(sim.base_url):
        completion = llm.complete(model="gpt-4.1", messages=MESSAGES)
    assert completion.finish_reason == "length"


def test_a_server_error_can_be_retried():
    with running_simulator(error_rate=1) as sim, provider(sim.base_url):
        error = call_failing()

    assert error.status == 500
    assert not error.permanent
    assert not error.rate_limited
    assert "simulated internal server error" in error.body
    assert "HTTP 500" in str(error)
    assert "simulated internal server error" in str(error)


def test_a_rate_limit_carries_retry_after():
    with running_simulator(rate_limit_rate=1, retry_after=7) as sim, provider(sim.base_url):
        error = call_failing()

    assert error.status == 429
    assert error.rate_limited
    assert not error.permanent
    assert error.retry_after == 7


def test_a_bad_request_is_permanent():
    # The simulator rejects an empty model name with a 400.
    with running_simulator() as sim, provider(sim.base_url):
        error = call_failing(model="")

    assert error.status == 400
    assert error.permanent
    assert error.retry_after is None


def test_a_rejected_key_is_permanent_and_never_repeated():
    # Like OpenAI, the simulator echoes the rejected key in its 401 body.
    with running_simulator(api_key="sk-the-right-one") as sim, provider(sim.base_url):
        error = call_failing()

    assert error.status == 401
    assert error.permanent
    assert "Incorrect API key provided" in error.body
    assert "[redacted]" in error.body


def test_the_key_is_scrubbed_from_a_200_with_no_usable_completion():
    # A proxy's error page, served with a 200, that quotes the request's headers.
    with running_simulator(garbage_rate=1) as sim, provider(sim.base_url):
        error = call_failing()

    assert error.status == 200
    assert "no usable completion" in str(error)
    assert KEY not in str(error) and KEY not in error.body
    assert "[redacted]" in str(error)


def test_a_hanging_provider_times_out_and_can_be_retried():
    with running_simulator(hang_rate=1) as sim, provider(sim.base_url, timeout=0.3):
        started = time.monotonic()
        error = call_failing()
        elapsed = time.monotonic() - started

    assert error.status is None
    assert not error.permanent
    assert "timed out" in str(error)
    assert 0.3 <= elapsed < 2
    assert error.latency_s >= 0.3


def test_an_unreachable_provider_can_be_retried():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens
    with provider(f"http://127.0.0.1:{port}/v1"):
        error = call_failing()

    assert error.status is None
    assert not error.permanent


class GarbageHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"object": "chat.completion", "choices": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_200_without_choices_can_be_retried():
    server = ThreadingHTTPServer(("127.0.0.1", 0), GarbageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with provider(f"http://127.0.0.1:{server.server_port}"):
            error = call_failing()
    finally:
        server.shutdown()
        server.server_close()

    assert error.status == 200
    assert not error.permanent
    assert "choices" in error.body


class DripHandler(BaseHTTPRequestHandler):
    """Answers at once, then sends the body a byte at a time: each read is quick."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, *args: object) -> None:
        pass


def test_the_timeout_bounds_the_whole_call():
    server = ThreadingHTTPServer(("127.0.0.1", 0), DripHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with provider(f"http://127.0.0.1:{server.server_port}", timeout=0.4):
            started = time.monotonic()
            error = call_failing()
            elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()

    assert "timed out" in str(error)
    assert not error.permanent
    assert elapsed < 1


def test_it_parses_retry_after_in_both_forms():
    assert llm.parse_retry_after("12") == 12
    assert llm.parse_retry_after("0.5") == 0.5
    assert llm.parse_retry_after(None) is None
    assert llm.parse_retry_after("soon") is None
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 < llm.parse_retry_after(in_a_minute) <= 60
    an_hour_ago = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert llm.parse_retry_after(an_hour_ago) == 0


def test_calls_run_concurrently():
    # Long enough that all 30 overlap however slowly a loaded machine starts the threads: the
    # simulator's peak then proves they ran at once (no wall-clock figure to miss).
    with running_simulator(latency_ms=1500) as sim, provider(sim.base_url):
        with override_settings(LLM_MAX_CONCURRENCY=50):
            threads = [
                threading.Thread(target=llm.complete, kwargs={"model": "m", "messages": MESSAGES})
                for _ in range(30)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        stats = sim.stats.snapshot()

    assert stats["requests"] == 30
    assert stats["peak_in_flight"] == 30
