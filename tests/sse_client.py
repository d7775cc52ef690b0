"""An in-process client of the event streams' ASGI routes (stream/): one request read event by
event, a bearer token's headers, and a pause for what was announced to reach the feed."""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.routing import URLRouter

from agents import events
from agents.models import ApiToken, Job
from stream.routing import http_urlpatterns

APP = URLRouter(http_urlpatterns)


HOST = {"Host": "testserver"}


class Stream:
    """One SSE request to the ASGI app, read event by event, then disconnected."""

    def __init__(self, path: str, headers: dict[str, str], method: str = "GET") -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in {**HOST, **headers}.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.sent: asyncio.Queue = asyncio.Queue()
        self.gone = asyncio.Event()
        self.buffer = ""
        self.status = 0
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> Stream:
        requested = False

        async def receive() -> dict:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        self.task = asyncio.create_task(APP(self.scope, receive, self.sent.put))
        start = await asyncio.wait_for(self.sent.get(), 10)
        self.status = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gone.set()
        await asyncio.wait_for(self.task, 10)

    async def body(self) -> dict:
        message = await asyncio.wait_for(self.sent.get(), 10)
        return json.loads(message["body"])

    async def next(self, timeout: float = 10) -> dict:
        """The next event or comment: {"id", "event", "data"} or {"comment"}."""
        while "\n\n" not in self.buffer:
            message = await asyncio.wait_for(self.sent.get(), timeout)
            self.buffer += message.get("body", b"").decode()
        block, self.buffer = self.buffer.split("\n\n", 1)
        fields: dict = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                fields.setdefault("comment", value.strip())
            else:
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        return fields

    async def events(self, n: int, timeout: float = 10) -> list[dict]:
        """The next `n` events, comments skipped (within `timeout` in all: keep-alives
        alone do not keep a test waiting)."""
        found = []

        async def collect() -> None:
            while len(found) < n:
                item = await self.next(timeout)
                if "event" in item:
                    found.append(item)

        await asyncio.wait_for(collect(), timeout)
        return found


def bearer(user) -> dict[str, str]:
    _, secret = ApiToken.objects.issue(user, "sse")
    return {"Authorization": f"Bearer {secret}"}


async def settle() -> None:
    """Let what was announced reach the feed (the flusher's window, then this)."""
    await sync_to_async(events.flush_now)()
    await asyncio.sleep(0.3)


def move(job: Job, new: str) -> None:
    Job.objects.get(pk=job.pk).transition(job.status, new)
    job.status = new


async def answer(path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict]:
    async with Stream(path, headers, method) as stream:
        return stream.status, stream.headers | await stream.body()
