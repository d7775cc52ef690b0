"""The agents page says what the provider limiter is doing, and what each chart plots."""

import os
import re
import threading

import pytest
import redis
from django.test import override_settings

from agents import limiter

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@override_settings(REDIS_URL="", LLM_MAX_CONCURRENCY=7)
def test_the_page_shows_calls_in_flight_against_the_cap(client, viewer):
    holding, release = threading.Event(), threading.Event()

    def call() -> None:
        with limiter.llm_slot():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        assert holding.wait(5)
        page = client.get("/agents/").content.decode()
    finally:
        release.set()
        thread.join()
    assert "Provider calls in flight" in page
    assert "<strong>1</strong> of 7" in page
    assert "held in this process" in page


def test_each_chart_says_what_it_plots(client, viewer):
    from .history import make_history

    make_history(1)
    page = client.get("/agents/").content.decode()
    assert "<figcaption>Latency (s), last hour</figcaption>" in page
    assert "<figcaption>Calls per 5 min, last hour</figcaption>" in page


def test_a_redis_loss_the_limiter_recovered_from_is_shown(client, viewer):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    client_redis = redis.Redis.from_url(REDIS_URL)
    seconds, _ = client_redis.time()
    client_redis.set(limiter.LOSS_KEY, seconds - 30, ex=60)
    try:
        with override_settings(REDIS_URL=REDIS_URL):
            page = client.get("/agents/").content.decode()
    finally:
        client_redis.delete(limiter.LOSS_KEY)
    assert re.search(r"Redis lost the limiter.{1,6}s slots 3[0-2] s ago", page)
    assert "one limit for every worker, held in Redis" in page
