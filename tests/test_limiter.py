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
    redis.Redis.from_url(redis_url).delete(
        limiter.slots_key(name),
        limiter.notify_key(name),
        limiter.waiters_key(name),
    )


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


def acquires_within(name: str, seconds: float) -> bool:
    """Whether a slot is granted in time (in a thread, so a broken limiter fails, not hangs)."""
    acquired = threading.Event()

    def take() -> None:
        with limiter.llm_slot(name):
            acquired.set()

    threading.Thread(target=take, daemon=True).start()
    return acquired.wait(seconds)


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_a_slot_left_by_a_killed_worker_expires(name: str, redis_url: str):
    client = redis.Redis.from_url(redis_url)
    server_now = float(client.time()[0])
    # A worker killed with kill -9 never released this slot; its expiry is in the past.
    client.zadd(limiter.slots_key(name), {"killed-worker": server_now - 1})

    assert acquires_within(name, 1)
    assert client.zscore(limiter.slots_key(name), "killed-worker") is None


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_a_live_slot_elsewhere_is_not_taken(name: str, redis_url: str):
    client = redis.Redis.from_url(redis_url)
    client.zadd(limiter.slots_key(name), {"busy-worker": float(client.time()[0]) + 60})

    assert not acquires_within(name, 0.3)
    client.zrem(limiter.slots_key(name), "busy-worker")


@override_settings(LLM_MAX_CONCURRENCY=1, LEASE_S=20)
def test_a_slot_expires_a_lease_after_its_last_renewal(name: str, redis_url: str):
    client = redis.Redis.from_url(redis_url)
    with limiter.llm_slot(name):
        [(_, first)] = client.zrange(limiter.slots_key(name), 0, -1, withscores=True)
        remaining = first - float(client.time()[0])
        time.sleep(limiter.RENEW_S * 1.6)
        [(_, renewed)] = client.zrange(limiter.slots_key(name), 0, -1, withscores=True)
    assert 18 < remaining <= 21
    assert renewed > first + limiter.RENEW_S * 0.5  # a long call keeps its slot


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_slots_lost_with_redis_data_are_written_back_by_their_holder(name: str, redis_url: str):
    """What a Redis restart or FLUSHDB does: the count is too low until the holder's next
    renewal writes its slot back; from then on nobody new gets in while it holds it."""
    client = redis.Redis.from_url(redis_url)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with limiter.llm_slot(name):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(5)
        client.delete(limiter.slots_key(name), limiter.LOSS_KEY)  # the data is lost
        time.sleep(limiter.RENEW_S * 1.5)
        assert limiter.state(name).in_flight == 1
        assert limiter.state(name).restored_s_ago is not None
        assert not acquires_within(name, 0.5)
    finally:
        release.set()
        thread.join()
    assert acquires_within(name, 2)


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_a_dead_holders_slot_is_reaped_once_its_call_cannot_still_run(name: str, redis_url: str):
    client = redis.Redis.from_url(redis_url)
    expires = float(client.time()[0]) + 60
    started = time.time() - 5
    client.zadd(limiter.slots_key(name), {f"dead-worker|{started:.3f}|x": expires})

    # Its call may still run at the provider for 10 s: not yet.
    assert limiter.reap(lambda holder: holder == "dead-worker", lambda: 10.0, name) == 0
    assert not acquires_within(name, 0.2)
    assert limiter.reap(lambda holder: holder == "alive", lambda: 1.0, name) == 0
    assert limiter.reap(lambda holder: holder == "dead-worker", lambda: 1.0, name) == 1
    assert acquires_within(name, 1)


@override_settings(LLM_MAX_CONCURRENCY=3)
def test_the_state_shows_calls_in_flight_and_waiting(name: str, redis_url: str):
    with limiter.llm_slot(name):
        state = limiter.state(name)
    assert (state.backend, state.cap, state.in_flight, state.waiting) == ("redis", 3, 1, 0)
    assert limiter.state(name).in_flight == 0


def wake_delay(name: str) -> float:
    """Seconds from one holder's release until a blocked waiter holds the slot."""
    holding, release = threading.Event(), threading.Event()
    released_at: list[float] = []

    def holder() -> None:
        with limiter.llm_slot(name):
            holding.set()
            release.wait(5)
            released_at.append(time.monotonic())

    first = threading.Thread(target=holder)
    first.start()
    holding.wait(5)
    started = time.monotonic()
    with_release = threading.Timer(0.03, release.set)
    with_release.start()
    with limiter.llm_slot(name):
        acquired_at = time.monotonic()
    first.join()
    assert acquired_at - started >= 0.03  # it did wait for the holder
    return acquired_at - released_at[0]


@override_settings(LLM_MAX_CONCURRENCY=1)
def test_a_waiter_is_woken_promptly(name: str):
    # Polling every WAIT_STEP_S alone would average 25 ms; a release notifies a waiter.
    delays = [wake_delay(name) for _ in range(10)]
    assert sum(delays) / len(delays) < 0.012


@override_settings(LLM_MAX_CONCURRENCY=2)
def test_a_failing_call_gives_its_redis_slot_back(name: str, redis_url: str):
    with pytest.raises(RuntimeError), limiter.llm_slot(name):
        raise RuntimeError("provider exploded")
    assert redis.Redis.from_url(redis_url).zcard(limiter.slots_key(name)) == 0
