"""What a subscriber outside Baton receives during a chaos run: a webhook endpoint subscribed
to job.completed and job.failed (a local HTTP receiver), and one client of the SSE feed
(`GET /api/v1/events` on a Daphne started for the run), reconnecting with Last-Event-ID as a
browser's EventSource does. Delivery is at least once: both count distinct jobs, and the
repeats apart. The feed lives in Redis: a flush wipes it, and a client told to `resync`
has missed what it cannot be given again; the count of those is the flush's cost.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import simulator

TERMINAL = ("completed", "failed", "cancelled")
WEBHOOK_EVENTS = ["job.completed", "job.failed"]
USER = "chaos-events"
RECONNECT_S = 0.5
# Once every job ended, how long the subscribers get to receive the last events; a delivery
# whose message the flush lost is re-sent by the reconciler after webhooks' STUCK_AFTER_S.
GRACE_S = 90.0
# Short keep-alives: the client notices a dead connection, and the web process re-checks it.
KEEPALIVE_S = "2"


class Webhooks:
    """A local endpoint keeping (monotonic time, event, job id, webhook-id) of each POST."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str, int, str]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                    row = (payload["type"], int(payload["data"]["job_id"]))
                except (ValueError, KeyError, TypeError):
                    row = ("unreadable", -1)
                with sink.lock:
                    sink.received.append((time.monotonic(), *row, self.headers.get("webhook-id")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/chaos"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jobs(self) -> set[int]:
        with self.lock:
            return {job for _, event, job, _ in self.received if event in WEBHOOK_EVENTS}

    def figures(self) -> dict:
        with self.lock:
            rows = list(self.received)
        per_job = Counter(job for _, event, job, _ in rows if event in WEBHOOK_EVENTS)
        return {
            "posts": len(rows),
            "jobs": len(per_job),
            "repeats": sum(n - 1 for n in per_job.values()),
            "ids_repeated": sum(n - 1 for n in Counter(r[3] for r in rows).values()),
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Feed:
    """One SSE client of every job's events, in its own thread."""

    url: str
    token: str
    terminal: dict[int, float] = field(default_factory=dict)  # job id → first seen (monotonic)
    repeats: int = 0
    connects: int = 0
    resyncs: list[float] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)  # not connected, from, to
    errors: Counter = field(default_factory=Counter)
    last_id: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import httpx

        timeout = httpx.Timeout(10.0, read=4 * float(KEEPALIVE_S))
        down_since: float | None = None
        while not self.done.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with httpx.stream("GET", self.url, headers=headers, timeout=timeout) as response:
                    if response.status_code != 200:
                        self.errors[f"HTTP {response.status_code}"] += 1
                    else:
                        self.connects += 1
                        if down_since is not None:
                            self.gaps.append((down_since, time.monotonic()))
                            down_since = None
                        self._read(response.iter_lines())
                        self.errors["ended by the server"] += 1
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] += 1
            if down_since is None:
                down_since = time.monotonic()
            self.done.wait(RECONNECT_S)

    def _read(self, lines) -> None:
        block: dict[str, str] = {}
        for line in lines:
            if self.done.is_set():
                return
            if line:
                name, _, value = line.partition(":")
                if name:
                    block[name] = value.removeprefix(" ")
                continue
            if "id" in block:
                self.last_id = block["id"]
            event = block.get("event")
            if event == "resync":
                self.resyncs.append(time.monotonic())
            elif event == "job.status":
                data = json.loads(block["data"])
                if data.get("status") in TERMINAL:
                    if data["job_id"] in self.terminal:
                        self.repeats += 1
                    else:
                        self.terminal[data["job_id"]] = time.monotonic()
            block = {}

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=4 * float(KEEPALIVE_S) + 5)


class Subscribers:
    """The webhook endpoint and the feed's client of one run, and the web process serving it."""

    def __init__(self, env: dict, logs: Path) -> None:
        from django.contrib.auth.models import User

        from agents.models import ApiToken
        from webhooks.models import Endpoint

        self.webhooks = Webhooks()
        Endpoint.objects.all().delete()
        Endpoint.objects.create(url=self.webhooks.url, events=WEBHOOK_EVENTS)
        user = User.objects.filter(username=USER).first()
        if user is None:
            user = User.objects.create_superuser(USER, password="bench-only-password")
        _, secret = ApiToken.objects.issue(user, "chaos events")
        self.port = simulator.free_port()
        log = logs / "web.log"
        daphne = [simulator.PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        self.web = simulator.spawn([*daphne, "orchestrator_site.asgi:application"], env, log)
        self.feed = Feed(f"http://127.0.0.1:{self.port}/api/v1/events", secret)

        def serving() -> bool:
            import httpx

            url = f"http://127.0.0.1:{self.port}/login/"
            return httpx.get(url, timeout=2).status_code == 200

        simulator.wait_for(serving, "daphne", self.web, log)
        self.feed.start()
        self._wait_for_presence(env)

    @staticmethod
    def _wait_for_presence(env: dict, timeout: float = 20) -> None:
        """Until the web process says a stream is open: moves from then on are kept."""
        import redis

        from stream import readers

        client = redis.Redis.from_url(env["REDIS_URL"])
        deadline = time.monotonic() + timeout
        while not client.exists(readers.READERS_KEY) and time.monotonic() < deadline:
            time.sleep(0.1)

    def wait(self, ended: set[int], grace_s: float = GRACE_S) -> float:
        """Until both saw every ended job, or grace_s; the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < grace_s:
            if ended <= self.webhooks.jobs() and ended <= set(self.feed.terminal):
                break
            time.sleep(0.5)
        return time.monotonic() - started

    def figures(self, ended: dict[int, float], t0: float, flush_at: float | None) -> dict:
        """`ended`: every terminal job's id → its end (monotonic clock of this process)."""
        feed = self.feed
        missed = sorted(set(ended) - set(feed.terminal))
        # A job missed by the feed "because of the flush": it ended from the flush until the
        # first resync after it (what the flush wiped before the web process read it).
        after_flush = [t for t in feed.resyncs if flush_at is not None and t >= t0 + flush_at]
        flush_end = (after_flush[0] if after_flush else t0 + flush_at + 2) if flush_at else None
        near_flush = [
            j for j in missed if flush_end and t0 + flush_at - 1 <= ended[j] <= flush_end + 1
        ]
        from webhooks.models import Delivery

        # Pending at the end: a delivery whose attempt's worker was killed after its claim.
        # No delivery at all: the message announcing the move was lost (the flush wipes the
        # queue; a killed worker's unacknowledged message comes back only after Redis's
        # visibility timeout), after its outbox row was deleted.
        deliveries = Counter(Delivery.objects.values_list("status", flat=True))
        unmade = set(ended) - set(Delivery.objects.values_list("job_id", flat=True))
        hook_missed = set(ended) - self.webhooks.jobs()
        around = (t0 + flush_at - 2, t0 + flush_at + 2) if flush_at is not None else (0, -1)
        return {
            "webhook": {
                **self.webhooks.figures(),
                "missed": len(hook_missed),
                "missed_near_flush": sum(
                    1 for j in hook_missed if around[0] <= ended[j] <= around[1]
                ),
                "no_delivery": len(unmade),
                "deliveries": dict(deliveries),
            },
            "sse": {
                "jobs": len(set(ended) & set(feed.terminal)),
                "repeats": feed.repeats,
                "connects": feed.connects,
                "resyncs": [round(t - t0, 1) for t in feed.resyncs],
                "gaps": [(round(a - t0, 1), round(b - t0, 1)) for a, b in feed.gaps],
                "errors": dict(feed.errors),
                "missed": len(missed),
                "missed_near_flush": len(near_flush),
            },
        }

    def stop(self) -> None:
        self.feed.stop()
        self.webhooks.stop()
        simulator.stop([self.web])


def cell(events: dict | None, jobs: int) -> str:
    """The summary table's cell."""
    if not events:
        return "–"
    hook, sse = events["webhook"], events["sse"]
    near = f", {sse['missed_near_flush']} of them at the flush" if sse["missed"] else ""
    pending = hook.get("deliveries", {}).get("pending", 0)
    return (
        f"webhook {hook['jobs']}/{jobs} (+{hook['repeats']} repeats; missed "
        f"{hook['missed']}: {hook.get('no_delivery', 0)} never made a delivery, "
        f"{hook.get('missed_near_flush', 0)} ended ±2 s of the flush; {pending} deliveries "
        "left pending) · "
        f"SSE {sse['jobs']}/{jobs} ({len(sse['resyncs'])} resyncs, {sse['missed']} missed{near})"
    )
