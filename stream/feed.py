"""The event feed behind the Server-Sent Events endpoints: every announcement, in commit
order, with an id a client resumes from.

With Redis: one Redis Stream for the whole system (`XADD ... MAXLEN ~ FEED_MAXLEN`); every
process appends what it announces, one pipeline per live window, and each client reads with
`XREAD BLOCK` from the id it saw last, so `Last-Event-ID` resumes exactly where it stopped.
Standalone (no REDIS_URL, one process): a ring buffer of the same size in this process,
with ids of the same form (`<milliseconds>-<sequence>`), and asyncio events to wake readers.
Either way a reader learns when the entries after its id were trimmed away (`Cursor.gap`).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

import redis
import redis.asyncio
from django.conf import settings

from agents.events import Announcement
from agents.limiter import redis_client

STREAM_KEY = "baton:events"
FEED_MAXLEN = 10_000
ID_PATTERN = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True)
class Entry:
    id: str
    event: str
    job_id: int
    data: str  # JSON text, as sent to clients


def key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def append(announcements: list[Announcement]) -> None:
    """Add a window's announcements to the feed (the hook agents.events calls)."""
    if settings.REDIS_URL:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        for a in announcements:
            fields = {"event": a.event, "job": a.job_id, "data": json.dumps(a.data)}
            pipe.xadd(STREAM_KEY, fields, maxlen=FEED_MAXLEN, approximate=True)
        pipe.execute()
    else:
        local.append([(a.event, a.job_id, json.dumps(a.data)) for a in announcements])


class LocalFeed:
    """The standalone feed: a ring buffer that threads append to and asyncio readers wait on."""

    def __init__(self, maxlen: int = FEED_MAXLEN) -> None:
        self.entries: deque[Entry] = deque(maxlen=maxlen)
        self.lock = threading.Lock()
        self.last = (0, 0)
        self.trimmed = (0, 0)  # the newest id that fell out of the buffer
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def append(self, items: list[tuple[str, int, str]]) -> None:
        with self.lock:
            for event, job_id, data in items:
                now = int(time.time() * 1000)
                self.last = (now, 0) if now > self.last[0] else (self.last[0], self.last[1] + 1)
                if len(self.entries) == self.entries.maxlen:
                    self.trimmed = key(self.entries[0].id)
                self.entries.append(Entry(f"{self.last[0]}-{self.last[1]}", event, job_id, data))
            waiters = list(self.waiters)
        for loop, woken in waiters:
            try:
                loop.call_soon_threadsafe(woken.set)
            except RuntimeError:  # that reader's loop is closed
                self.unwatch(loop, woken)

    def watch(self, loop: asyncio.AbstractEventLoop, woken: asyncio.Event) -> None:
        with self.lock:
            self.waiters.add((loop, woken))

    def unwatch(self, loop: asyncio.AbstractEventLoop, woken: asyncio.Event) -> None:
        with self.lock:
            self.waiters.discard((loop, woken))

    def position(self) -> str:
        with self.lock:
            return f"{self.last[0]}-{self.last[1]}"

    def after(self, entry_id: str, count: int) -> tuple[list[Entry], bool]:
        """Up to `count` entries after `entry_id`, and whether some after it were trimmed."""
        since = key(entry_id)
        with self.lock:
            newer: list[Entry] = []
            for entry in reversed(self.entries):
                if key(entry.id) <= since:
                    break
                newer.append(entry)
            return newer[::-1][:count], since < self.trimmed


local = LocalFeed()


class Cursor:
    """One client's place in the feed; `read` waits up to `timeout` for what follows it."""

    BATCH = 200

    def __init__(self, last_id: str | None) -> None:
        self.last_id = last_id
        self.gap = False  # entries after the client's id were trimmed before it came back
        self._redis: redis.asyncio.Redis | None = None
        self._woken: asyncio.Event | None = None

    async def open(self) -> None:
        if settings.REDIS_URL:
            # Its own connection: XREAD BLOCK holds it. No read timeout, the BLOCK bounds it.
            self._redis = redis.asyncio.Redis.from_url(
                settings.REDIS_URL, decode_responses=True, socket_timeout=None
            )
            info = await self._stream_info()
            if self.last_id is None:
                self.last_id = info.get("last-generated-id") or "0-0"
            else:
                trimmed = info.get("max-deleted-entry-id") or "0-0"
                self.gap = key(self.last_id) < key(trimmed)
        else:
            self._woken = asyncio.Event()
            local.watch(asyncio.get_running_loop(), self._woken)
            if self.last_id is None:
                self.last_id = local.position()
            else:
                self.gap = local.after(self.last_id, 0)[1]

    async def _stream_info(self) -> dict:
        try:
            return await self._redis.xinfo_stream(STREAM_KEY)
        except redis.ResponseError:  # no stream yet (nothing announced, or Redis was flushed)
            return {}

    async def read(self, timeout: float) -> list[Entry]:
        if self._redis is not None:
            reply = await self._redis.xread(
                {STREAM_KEY: self.last_id}, count=self.BATCH, block=max(int(timeout * 1000), 1)
            )
            entries = [
                Entry(entry_id, fields["event"], int(fields["job"]), fields["data"])
                for _, rows in reply or []
                for entry_id, fields in rows
            ]
        else:
            self._woken.clear()  # before reading: an append from now on wakes the wait below
            entries, _ = local.after(self.last_id, self.BATCH)
            if entries:
                await asyncio.sleep(0)  # a reader catching up lets the others run between batches
            else:
                try:
                    await asyncio.wait_for(self._woken.wait(), timeout)
                except TimeoutError:
                    return []
                entries, _ = local.after(self.last_id, self.BATCH)
        if entries:
            self.last_id = entries[-1].id
        return entries

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._woken is not None:
            local.unwatch(asyncio.get_running_loop(), self._woken)
