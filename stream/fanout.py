"""One reader of the feed per process, fanning what it reads out to the connected streams.

A `Hub` (one per event loop, running while it has subscribers) follows the feed from where
it joined: with Redis, one connection in `XREAD BLOCK` whatever the number of clients (plus
a small pool for replays); standalone, the in-process ring, woken by its appends. Each
client's `Cursor` holds a bounded queue of what concerns it: one that cannot keep up loses
its queue and is told to resync, rather than making the hub (or everyone) wait.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque

import redis
import redis.asyncio
from django.conf import settings

from . import feed, readers

log = logging.getLogger(__name__)

BATCH = 200
BLOCK_MS = 10_000
QUEUE_MAX = 1_000  # entries waiting for one slow client before it is told to resync
REDIS_RETRY_S = 1.0


class Subscription:
    """What the hub has for one client: the entries it has not sent yet, bounded."""

    def __init__(self, job_id: int | None) -> None:
        self.job_id = job_id
        self.pending: deque[feed.Entry] = deque()
        self.woken = asyncio.Event()
        self.overflowed = False

    def offer(self, entries: list[feed.Entry]) -> None:
        if self.job_id is not None:
            entries = [e for e in entries if e.job_id == self.job_id]
        if not entries or self.overflowed:
            return
        if len(self.pending) + len(entries) > QUEUE_MAX:
            self.overflowed = True
            self.pending.clear()
        else:
            self.pending.extend(entries)
        self.woken.set()

    def lost(self) -> None:
        """The hub missed entries (trimmed before it read them): everyone resyncs."""
        self.overflowed = True
        self.pending.clear()
        self.woken.set()


class Hub:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.subscribers: set[Subscription] = set()
        self.position = "0-0"  # the last id read, or where the hub started
        self.client: redis.asyncio.Redis | None = None  # replays; the reader has its own
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()

    async def join(self, subscription: Subscription) -> None:
        async with self.lock:
            self.subscribers.add(subscription)  # first: nothing read from here on is missed
            if self.task is not None:
                return
            if self.redis_url:
                self.client = redis.asyncio.Redis(
                    connection_pool=redis.asyncio.BlockingConnectionPool.from_url(
                        self.redis_url, decode_responses=True, max_connections=4, timeout=10
                    )
                )
                self.position, _ = await feed.stream_end(self.client)
                self.task = asyncio.create_task(self._follow_redis())
            else:
                self.position = feed.local.position()
                self.task = asyncio.create_task(self._follow_local())

    async def leave(self, subscription: Subscription) -> None:
        async with self.lock:
            self.subscribers.discard(subscription)
            if self.subscribers or self.task is None:
                return
            # Nobody left: the hub stops reading (and gives its connections back).
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
            if self.client is not None:
                await self.client.aclose()
                self.client = None

    def _fan_out(self, entries: list[feed.Entry]) -> None:
        self.position = entries[-1].id
        for subscription in list(self.subscribers):
            subscription.offer(entries)

    async def _follow_redis(self) -> None:
        # Its own connection: XREAD BLOCK holds it. No read timeout, the BLOCK bounds it.
        reader = redis.asyncio.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=None
        )
        try:
            while True:
                await readers.renew(reader)  # streams are open: moves go through the outbox
                try:
                    reply = await reader.xread(
                        {feed.STREAM_KEY: self.position}, count=BATCH, block=BLOCK_MS
                    )
                except redis.RedisError as exc:  # the clients stay, on keep-alives
                    log.warning("event feed: reading Redis failed (%s), retrying", exc)
                    await asyncio.sleep(REDIS_RETRY_S)
                    continue
                read = [entry for _, rows in reply or [] for entry in feed.entries(rows)]
                if read:
                    self._fan_out(read)
        finally:
            await reader.aclose()

    async def _follow_local(self) -> None:
        loop, woken = asyncio.get_running_loop(), asyncio.Event()
        feed.local.watch(loop, woken)
        try:
            while True:
                woken.clear()  # before reading: an append from now on wakes the wait below
                read, trimmed = feed.local.after(self.position, BATCH)
                if trimmed:
                    self.position = feed.local.position()
                    for subscription in list(self.subscribers):
                        subscription.lost()
                elif read:
                    self._fan_out(read)
                    await asyncio.sleep(0)  # catching up: let the streams send between batches
                else:
                    await woken.wait()
        finally:
            feed.local.unwatch(loop, woken)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Hub]] = (
    weakref.WeakKeyDictionary()
)


def hub() -> Hub:
    """This event loop's hub for the feed the settings name."""
    hubs = _hubs.setdefault(asyncio.get_running_loop(), {})
    if settings.REDIS_URL not in hubs:
        hubs[settings.REDIS_URL] = Hub(settings.REDIS_URL)
    return hubs[settings.REDIS_URL]


class Cursor:
    """One client's place in the feed (all jobs, or one). After `open`, `resync` says why
    the client must re-read what it shows (None: it may trust the stream), and `read` waits
    up to `timeout` for what follows."""

    def __init__(self, last_id: str | None, job_id: int | None = None) -> None:
        self.last_id = last_id
        self.resync: str | None = None
        self.subscription = Subscription(job_id)
        self._hub: Hub | None = None

    async def open(self) -> None:
        self._hub = hub()
        await self._hub.join(self.subscription)
        if self.last_id is None:
            self.last_id = self._hub.position
            return
        limit = settings.SSE_REPLAY_MAX
        if self._hub.client is not None:
            missed = await feed.replay(self._hub.client, self.last_id, limit)
        else:
            missed = feed.local.replay(self.last_id, limit)
        if missed is None:
            self.resync = f"more than {limit} events followed Last-Event-ID, or were trimmed"
            self.subscription.pending.clear()
            self.last_id = self._hub.position
            return
        job_id = self.subscription.job_id
        # What the hub read since joining may repeat the replay's end: `read` skips it.
        self.subscription.pending.extendleft(
            reversed([e for e in missed if job_id is None or e.job_id == job_id])
        )

    async def read(self, timeout: float) -> list[feed.Entry]:
        subscription = self.subscription
        if not subscription.pending and not subscription.overflowed:
            subscription.woken.clear()
            try:
                await asyncio.wait_for(subscription.woken.wait(), timeout)
            except TimeoutError:
                return []
        if subscription.overflowed:
            subscription.overflowed = False
            self.resync = "this client fell behind the feed"
            self.last_id = self._hub.position
            return []
        since = feed.key(self.last_id)
        found = []
        while subscription.pending and len(found) < BATCH:
            entry = subscription.pending.popleft()
            if feed.key(entry.id) > since:
                found.append(entry)
                since = feed.key(entry.id)
        if found:
            self.last_id = found[-1].id
        return found

    async def close(self) -> None:
        if self._hub is not None:
            await self._hub.leave(self.subscription)
