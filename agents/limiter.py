"""Bound how many LLM calls are in flight at once.

With REDIS_URL set, the bound holds across every worker process on every machine: a Redis
semaphore. Without Redis (standalone mode) everything runs in one process, so a local
semaphore is the same bound.
"""

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "baton:llm:"
# A waiter re-checks at least this often even if it misses a release notification.
WAIT_STEP_S = 0.05

# Drop expired holders, then take a slot if one is free. Scores are expiry times on the
# Redis clock, so workers on machines with skewed clocks agree.
_ACQUIRE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  return 1
end
return 0
"""

_lock = threading.Lock()
_local: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_clients: dict[str, redis.Redis] = {}


def slot_ttl_s() -> float:
    """How long a slot outlives its holder: a worker killed with kill -9 never releases."""
    return float(settings.LLM_TIMEOUT_S) + 30


def slots_key(name: str = "default") -> str:
    return f"{KEY_PREFIX}{name}:slots"


def notify_key(name: str = "default") -> str:
    return f"{KEY_PREFIX}{name}:notify"


@contextmanager
def llm_slot(name: str = "default") -> Iterator[None]:
    """Hold one of LLM_MAX_CONCURRENCY slots for the duration of the block.

    Blocks until a slot is free. `name` separates independent limits (per provider,
    or per test) and defaults to the one shared limit.
    """
    limit = int(settings.LLM_MAX_CONCURRENCY)
    if settings.REDIS_URL:
        with _redis_slot(redis_client(settings.REDIS_URL), name, limit):
            yield
    else:
        semaphore = _local_semaphore(name, limit)
        with semaphore:
            yield


def redis_client(url: str) -> redis.Redis:
    """One connection pool per process and URL."""
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(url)
        return client


def _local_semaphore(name: str, limit: int) -> threading.BoundedSemaphore:
    # Keyed by limit too, so override_settings in tests gets a semaphore of its own size.
    with _lock:
        semaphore = _local.get((name, limit))
        if semaphore is None:
            semaphore = _local[(name, limit)] = threading.BoundedSemaphore(limit)
        return semaphore


@contextmanager
def _redis_slot(client: redis.Redis, name: str, limit: int) -> Iterator[None]:
    slots, notify = slots_key(name), notify_key(name)
    token = uuid.uuid4().hex
    acquire = client.register_script(_ACQUIRE)
    ttl = slot_ttl_s()
    while not acquire(keys=[slots], args=[limit, ttl, token]):
        # A release pushes onto the notify list, so one waiter wakes at once; the others
        # retry after WAIT_STEP_S (which also covers slots freed by expiry).
        client.blpop([notify], timeout=WAIT_STEP_S)
    try:
        yield
    finally:
        try:
            pipe = client.pipeline()
            pipe.zrem(slots, token)
            pipe.lpush(notify, 1)
            # Nobody may be waiting: keep the list short and let it vanish when idle.
            pipe.ltrim(notify, 0, limit - 1)
            pipe.expire(notify, 60)
            pipe.execute()
        except redis.RedisError:
            # The slot expires on its own after slot_ttl_s(); do not hide the caller's error.
            logger.warning("could not release LLM slot %s; it will expire", token, exc_info=True)
