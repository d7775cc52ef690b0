"""For outgoing-HTTP tests: a plain HTTP server on 127.0.0.1 in a thread that answers each
request by a script (a size to stream, a drip of bytes) and counts what it managed to send,
so a test can say how much a client read without timing it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024


@dataclass
class Served:
    port: int
    hosts: list[str] = field(default_factory=list)  # the Host header of each request
    sent: int = 0  # bytes of answers written before the client went away
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def stream(total: int) -> Callable[[BaseHTTPRequestHandler, Served], None]:
    """200 with a body of `total` bytes, written a chunk at a time."""

    def answer(handler: BaseHTTPRequestHandler, served: Served) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        chunk = b"x" * CHUNK
        while served.sent < total:
            piece = chunk[: total - served.sent]
            handler.wfile.write(piece)
            served.sent += len(piece)

    return answer


def drip(count: int, every_s: float, *, in_headers: bool = False):
    """One byte every `every_s` seconds, `count` of them: of the body after the headers, or
    of a header before the status line is done (`in_headers`)."""

    def answer(handler: BaseHTTPRequestHandler, served: Served) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        if in_headers:
            handler.wfile.write(b"X-Slow: ")
        else:
            handler.wfile.write(f"Content-Length: {count}\r\n\r\n".encode())
        handler.wfile.flush()
        for _ in range(count):
            time.sleep(every_s)
            handler.wfile.write(b"a")
            handler.wfile.flush()
            served.sent += 1
        if in_headers:
            handler.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")

    return answer


def redirect(location: str):
    def answer(handler: BaseHTTPRequestHandler, served: Served) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@contextmanager
def serving(script) -> Iterator[Served]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            served.hosts.append(self.headers.get("Host", ""))
            try:
                script(self, served)
            except OSError:
                pass  # the client went away: what it read is counted
            finally:
                self.close_connection = True
                served.done.set()

        do_POST = do_GET

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self) -> None:
            # A small send buffer: what the server could send is near what a client read.
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
            super().server_bind()

    server = Server(("127.0.0.1", 0), Handler)
    served = Served(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
