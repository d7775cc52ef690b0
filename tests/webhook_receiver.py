"""For webhook tests: a real HTTP endpoint that answers with scripted statuses and keeps what
came, and the Celery messages the code sends by name."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from celery import current_app


@dataclass
class Received:
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    url: str
    # Statuses to answer, in order; the last one is repeated. (status, body, delay_s)
    script: list[tuple[int, str, float]] = field(default_factory=lambda: [(200, "ok", 0.0)])
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, *statuses: int, body: str = "", delay_s: float = 0.0) -> None:
        self.script = [(status, body or f"answer {status}", delay_s) for status in statuses]

    def wait_for(self, n: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} requests arrived, not {n}")
                self.arrived.wait(left)
            return list(self.received)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            with receiver.arrived:
                n = len(receiver.received)
                status, text, delay = receiver.script[min(n, len(receiver.script) - 1)]
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body)
                )
                receiver.arrived.notify_all()
            time.sleep(delay)
            payload = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the sender gave up waiting
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/baton"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def capture_sent_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """The messages sent with `send_task` (by name), kept instead of sent."""
    messages: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args=(), **kw: messages.append((name, args))
    )
    return messages
