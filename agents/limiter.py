"""Bound how many LLM calls are in flight at once.

With REDIS_URL set, the bound holds across every worker process on every machine: a Redis
semaphore whose slots expire unless their holder renews them. Without Redis (standalone
mode) everything runs in one process, so a local semaphore is the same bound.

A slot lives LEASE_S past its holder's last renewal: one thread per process renews every
slot the process holds each RENEW_S, so a live call of any length keeps its slot and a killed
worker's slots lapse with its leases. When Redis loses its data (a restart or a flush), each
holder writes its slots back at its next renewal: until then the semaphore counts too few,
so at most LLM_MAX_CONCURRENCY extra calls can start, for at most RENEW_S (ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from django.conf import settings

from agents import process, threads
from agents.redisconn import redis_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "baton:llm:"
# A waiter re-checks at least this often even if it misses a release notification.
WAIT_STEP_S = 0.05
RENEW_S = 1.0

# Drop expired holders, then take a slot if one is free; otherwise count the caller as
# waiting. Scores are expiry times on the Redis clock, so workers on machines with skewed
# clocks agree.
_ACQUIRE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[3])
  return 1
end
redis.call('ZADD', KEYS[2], now + 1, ARGV[3])
redis.call('EXPIRE', KEYS[2], 60)
return 0
"""
# Push back the expiry of this process's slots. A slot that was not there (Redis lost its
# data) is written back, and the loss noted for the agents page.
_RENEW = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local restored = 0
for i = 2, #ARGV, 2 do
  restored = restored + redis.call('ZADD', ARGV[i], now + tonumber(ARGV[1]), ARGV[i + 1])
end
if restored > 0 then
  redis.call('SET', KEYS[1], now, 'EX', 3600)
end
return restored
"""

_lock = threading.Lock()
_local: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_held_lock = threading.Lock()
_held: dict[str, tuple[str, str]] = {}  # this process's slots: member -> (Redis URL, key)


def slot_ttl_s() -> float:
    """How long a slot outlives its holder's last renewal."""
    return float(settings.LEASE_S)


def slots_key(name: str = "default") -> str:
    return f"{KEY_PREFIX}{name}:slots"


def notify_key(name: str = "default") -> str:
    return f"{KEY_PREFIX}{name}:notify"


def waiters_key(name: str = "default") -> str:
    return f"{KEY_PREFIX}{name}:waiters"


LOSS_KEY = f"{KEY_PREFIX}slots-restored-at"


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
    # Who holds it and since when: a slot of a process seen dead can be reaped early.
    member = f"{process.me()}|{time.time():.3f}|{uuid.uuid4().hex[:12]}"
    acquire = client.register_script(_ACQUIRE)
    keys = [slots, waiters_key(name)]
    while not acquire(keys=keys, args=[limit, slot_ttl_s(), member]):
        # A release pushes onto the notify list, so one waiter wakes at once; the others
        # retry after WAIT_STEP_S (which also covers slots freed by expiry).
        client.blpop([notify], timeout=WAIT_STEP_S)
    _hold(member, (settings.REDIS_URL, slots))
    try:
        yield
    finally:
        try:
            with _held_lock:  # never between a renewal's read of _held and its write
                _held.pop(member, None)
                pipe = client.pipeline()
                pipe.zrem(slots, member)
                pipe.lpush(notify, 1)
                # Nobody may be waiting: keep the list short and let it vanish when idle.
                pipe.ltrim(notify, 0, limit - 1)
                pipe.expire(notify, 60)
                pipe.execute()
        except redis.RedisError:
            # The slot expires on its own after slot_ttl_s(); do not hide the caller's error.
            logger.warning("could not release LLM slot %s; it will expire", member, exc_info=True)


def _hold(member: str, where: tuple[str, str]) -> None:
    with _held_lock:
        _held[member] = where
    renewer.start()


def renew_held() -> int:
    """Renew (or write back) every slot this process holds; returns how many."""
    with _held_lock:  # held across the write: a release never slips in between
        by_url: dict[str, list[str]] = {}
        for member, (url, key) in _held.items():
            by_url.setdefault(url, []).extend((key, member))
        for url, pairs in by_url.items():
            renew = redis_client(url).register_script(_RENEW)
            restored = renew(keys=[LOSS_KEY], args=[slot_ttl_s(), *pairs])
            if restored:
                logger.warning(
                    "Redis had lost %d LLM slots of this process; written back", restored
                )
        return len(_held)


def _renew_forever() -> None:
    while True:
        time.sleep(RENEW_S)
        try:
            renew_held()
        except Exception:
            logger.warning("could not renew LLM slots", exc_info=True)


renewer = threads.register("baton-slots", __name__, _renew_forever)


# After `reap`: seconds until a dead holder's slot it left (its call may still run) comes free.
next_reap_in_s: float | None = None


def reap(
    gone: Callable[[str], bool], older_than_s: Callable[[], float], name: str = "default"
) -> int:
    """Free the slots of holders `gone` says are dead, once held `older_than_s()`.

    The call a dead holder started may still run at the provider for a while: the caller
    says how long such a call can last (it knows the recent latencies).
    """
    global next_reap_in_s
    next_reap_in_s = None
    if not settings.REDIS_URL:
        return 0
    client = redis_client(settings.REDIS_URL)
    orphans = []
    for raw in client.zrange(slots_key(name), 0, -1):
        holder, _, rest = raw.decode().partition("|")
        if gone(holder):
            orphans.append((raw, _float(rest.partition("|")[0])))
    if not orphans:
        return 0
    cutoff = time.time() - older_than_s()
    dead = [member for member, since in orphans if since < cutoff]
    waiting = [since - cutoff for _, since in orphans if since >= cutoff]
    next_reap_in_s = min(waiting) if waiting else None
    if dead:
        client.zrem(slots_key(name), *dead)
        client.lpush(notify_key(name), *[1] * len(dead))
        client.expire(notify_key(name), 60)
    return len(dead)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class LimiterState:
    """What the agents page shows of the limiter."""

    backend: str
    cap: int
    in_flight: int
    waiting: int
    restored_s_ago: float | None  # when slots lost with Redis's data were last written back


def state(name: str = "default") -> LimiterState:
    cap = int(settings.LLM_MAX_CONCURRENCY)
    if not settings.REDIS_URL:
        semaphore = _local_semaphore(name, cap)
        return LimiterState("local", cap, cap - semaphore._value, 0, None)
    client = redis_client(settings.REDIS_URL)
    seconds, micros = client.time()
    now = seconds + micros / 1e6
    pipe = client.pipeline()
    pipe.zcount(slots_key(name), now, "+inf")
    pipe.zcount(waiters_key(name), now, "+inf")
    pipe.get(LOSS_KEY)
    in_flight, waiting, restored_at = pipe.execute()
    ago = max(0.0, now - _float(restored_at.decode())) if restored_at else None
    return LimiterState("redis", cap, in_flight, waiting, ago)
