"""The event feed behind the Server-Sent Events endpoints: every announcement, in commit
order, with an id a client resumes from.

With Redis: one Redis Stream for the whole system (`XADD ... MAXLEN ~ FEED_MAXLEN`); every
process appends what it announces, one pipeline per live window. Standalone (no REDIS_URL,
one process): a ring buffer of the same size in this process, with ids of the same form
(`<milliseconds>-<sequence>`, each part at most 2^64 - 1, as Redis's). Readers do not read
here one by one: one task per process follows the feed and fans it out (stream.fanout);
`replay` serves a client that comes back with `Last-Event-ID`, at most `SSE_REPLAY_MAX`
entries, else it is told to resync.
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
from agents.redisconn import redis_client

STREAM_KEY = "baton:events"
FEED_MAXLEN = 10_000
ID_PATTERN = re.compile(r"^(\d{1,20})-(\d{1,20})$")
MAX_ID_PART = 2**64 - 1  # Redis refuses a stream id with a larger part


@dataclass(frozen=True)
class Entry:
    id: str
    event: str
    job_id: int
    data: str  # JSON text, as sent to clients


def key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def parse_id(text: str) -> str | None:
    """A client's `Last-Event-ID` as the feed writes ids, or None if the feed could never
    have sent it (not `<ms>-<seq>`, or a part beyond 2^64 - 1)."""
    match = ID_PATTERN.match(text)
    if match is None or int(match[1]) > MAX_ID_PART or int(match[2]) > MAX_ID_PART:
        return None
    return f"{int(match[1])}-{int(match[2])}"


def append(announcements: list[Announcement]) -> None:
    """Add a window's announcements to the feed (the hook agents.events calls). Each one's
    data carries its `event_id`: an event the outbox relayed twice has two entries, one id."""
    items = [(a.event, a.job_id, json.dumps({**a.data, "event_id": a.id})) for a in announcements]
    if settings.REDIS_URL:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        for event, job_id, data in items:
            fields = {"event": event, "job": job_id, "data": data}
            pipe.xadd(STREAM_KEY, fields, maxlen=FEED_MAXLEN, approximate=True)
        pipe.execute()
    else:
        local.append(items)


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

    def replay(self, entry_id: str, limit: int) -> list[Entry] | None:
        """The entries after `entry_id`, or None when they are more than `limit`, some were
        trimmed, or the id is ahead of the feed (another run's): the client resyncs."""
        since = key(entry_id)
        with self.lock:
            if since < self.trimmed or since > self.last:
                return None
            newer: list[Entry] = []
            for entry in reversed(self.entries):
                if key(entry.id) <= since:
                    break
                if len(newer) == limit:
                    return None
                newer.append(entry)
            return newer[::-1]


local = LocalFeed()


def entries(rows: list) -> list[Entry]:
    """Redis's `[(id, fields), ...]` as entries."""
    return [Entry(i, f["event"], int(f["job"]), f["data"]) for i, f in rows]


async def stream_end(client: redis.asyncio.Redis) -> tuple[str, str]:
    """The Redis feed's last id and the newest id trimmed from it ("0-0": none)."""
    try:
        info = await client.xinfo_stream(STREAM_KEY)
    except redis.ResponseError:  # no stream yet (nothing announced, or Redis was flushed)
        return "0-0", "0-0"
    return info.get("last-generated-id") or "0-0", info.get("max-deleted-entry-id") or "0-0"


async def replay(client: redis.asyncio.Redis, entry_id: str, limit: int) -> list[Entry] | None:
    """As `LocalFeed.replay`, from the Redis feed: one XINFO and one XRANGE of at most
    `limit + 1` entries, whatever the id."""
    last, trimmed = await stream_end(client)
    since = key(entry_id)
    if since < key(trimmed) or since > key(last):
        return None
    rows = await client.xrange(STREAM_KEY, min=f"({entry_id}", count=limit + 1)
    return entries(rows) if len(rows) <= limit else None
