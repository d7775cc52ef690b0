"""Whether some event stream is open, anywhere: then every announcement goes through the
outbox (agents.outbox), so a process killed before relaying it does not lose it.

A web process following the feed for its streams (stream.fanout) renews one Redis key
(`renew`, at most every few seconds); a moving step asks whether it exists (`present`, at
most once a second per process). Like the watched groups (agents.events), presence expires
rather than being counted down: a killed web process leaves no count behind. Standalone (no
Redis) the feed lives in the one process, and dies with it: nothing to keep.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
import redis.asyncio
from django.conf import settings

from agents.events import Announcement
from agents.redisconn import redis_client

log = logging.getLogger(__name__)

READERS_KEY = "baton:sse-readers"
# Outlives a few keep-alives: a stream renews at each read, and a client that reconnects
# (RECONNECT_MS) finds its events kept meanwhile.
READERS_TTL_S = 60
RENEW_EVERY_S = 5.0
ASK_EVERY_S = 1.0

_lock = threading.Lock()
_renewed_at = float("-inf")
_asked: tuple[float, bool] = (float("-inf"), False)


def presence_ttl_s() -> int:
    return max(READERS_TTL_S, int(3 * settings.SSE_KEEPALIVE_S))


async def renew(client: redis.asyncio.Redis) -> None:
    """A stream is open in this process: its feed reader calls this between reads."""
    global _renewed_at
    if time.monotonic() - _renewed_at < RENEW_EVERY_S:
        return
    _renewed_at = time.monotonic()
    try:
        await client.set(READERS_KEY, 1, ex=presence_ttl_s())
    except redis.RedisError:  # the reader itself will say that Redis is away
        _renewed_at = float("-inf")


def present(announcement: Announcement | None = None) -> bool:
    """Whether some stream may read the feed (the durable test agents.events asks)."""
    global _asked
    if not settings.REDIS_URL:
        return False
    asked_at, seen = _asked
    if time.monotonic() - asked_at < ASK_EVERY_S:
        return seen
    with _lock:
        try:
            seen = bool(redis_client(settings.REDIS_URL).exists(READERS_KEY))
        except Exception:  # Redis away: keep everything, the relay feeds it when it is back
            seen = True
        _asked = (time.monotonic(), seen)
    return seen


def forget() -> None:
    """Ask Redis again at the next move (tests)."""
    global _asked, _renewed_at
    _asked = (float("-inf"), False)
    _renewed_at = float("-inf")
