import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

from agents import limiter

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> Iterator[str]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    with override_settings(REDIS_URL=REDIS_URL):
        yield REDIS_URL


@pytest.fixture
def name(redis_url: str) -> Iterator[str]:
    """A limit of its own, so other users of this Redis do not share the test's slots."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(redis_url).delete(limiter.slots_key(name), limiter.notify_key(name))


def peak_concurrency(name: str, threads: int = 20, hold_s: float = 0.02) -> int:
    lock = threading.Lock()
    current = peak = 0

    def work() -> None:
        nonlocal current, peak
        with limiter.llm_slot(name):
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(hold_s)
            with lock:
                current -= 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    return peak


@override_settings(REDIS_URL="", LLM_MAX_CONCURRENCY=3)
def test_the_local_limit_holds_and_is_used():
    assert peak_concurrency("default") == 3


@override_settings(REDIS_URL="", LLM_MAX_CONCURRENCY=3)
def test_a_failing_call_gives_its_local_slot_back():
    for _ in range(5):
        with pytest.raises(RuntimeError), limiter.llm_slot():
            raise RuntimeError("provider exploded")
    assert peak_concurrency("default", threads=6) == 3


@override_settings(LLM_MAX_CONCURRENCY=3)
def test_the_redis_limit_holds_and_is_used(name: str):
    assert peak_concurrency(name) == 3


@override_settings(LLM_MAX_CONCURRENCY=3)
def test_the_redis_limit_is_shared_by_holders_elsewhere(name: str, redis_url: str):
    # Two slots held by another process: only one is left here.
    client = redis.Redis.from_url(redis_url)
    client.zadd(limiter.slots_key(name), {"worker-a": time.time() + 60, "worker-b": 1e12})
    assert peak_concurrency(name, threads=5) == 1


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_a_slot_left_by_a_killed_worker_expires(name: str, redis_url: str):
    client = redis.Redis.from_url(redis_url)
    server_now = float(client.time()[0])
    # A worker killed with kill -9 never released this slot; its expiry is in the past.
    client.zadd(limiter.slots_key(name), {"killed-worker": server_now - 1})

    started = time.monotonic()
    with limiter.llm_slot(name):
        assert client.zscore(limiter.slots_key(name), "killed-worker") is None
    assert time.monotonic() - started < 0.5
    assert client.zcard(limiter.slots_key(name)) == 0


@override_settings(LLM_MAX_CONCURRENCY=1, LLM_TIMEOUT_S=10)
def test_a_slot_expires_after_the_call_timeout_plus_a_margin(name: str, redis_url: str):
    client = redis.Redis.from_url(redis_url)
    with limiter.llm_slot(name):
        [(_, expires)] = client.zrange(limiter.slots_key(name), 0, -1, withscores=True)
        remaining = expires - float(client.time()[0])
    assert 38 < remaining <= 41


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_a_waiter_is_woken_promptly(name: str):
    released = threading.Event()
    acquired_at: list[float] = []
    release_at: list[float] = []

    def holder() -> None:
        with limiter.llm_slot(name):
            released.wait(5)
            release_at.append(time.monotonic())

    def waiter() -> None:
        with limiter.llm_slot(name):
            acquired_at.append(time.monotonic())

    first = threading.Thread(target=holder)
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=waiter)
    second.start()
    time.sleep(0.2)
    assert not acquired_at  # the only slot is taken
    released.set()
    first.join()
    second.join()

    assert acquired_at[0] - release_at[0] < 0.04


@override_settings(LLM_MAX_CONCURRENCY=2)
def test_a_failing_call_gives_its_redis_slot_back(name: str, redis_url: str):
    with pytest.raises(RuntimeError), limiter.llm_slot(name):
        raise RuntimeError("provider exploded")
    assert redis.Redis.from_url(redis_url).zcard(limiter.slots_key(name)) == 0
