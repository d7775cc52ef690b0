"""Live messages are numbered per group, and heartbeats tell each watched group its number.

What a page does with them (notice a gap or a silence, re-fetch itself) is in live.js and
tests/test_browser_live_recovery.py. These run standalone and, where Redis answers, on Redis.
"""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from django.test import override_settings

from agents import events
from dashboard import live

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["standalone", "redis"])
def mode(request) -> Iterator[str]:
    if request.param == "standalone":
        with override_settings(REDIS_URL=""):
            yield request.param
        return
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    with override_settings(REDIS_URL=REDIS_URL):
        yield request.param


@pytest.fixture
def new_group(mode: str) -> Iterator[Callable[[], str]]:
    """Groups of the test's own: others may use this Redis at the same time."""
    names: list[str] = []

    def make() -> str:
        names.append(f"test-{uuid.uuid4().hex}")
        return names[-1]

    yield make
    if mode == "redis":
        redis.Redis.from_url(REDIS_URL).delete(
            *(events.WATCHED_PREFIX + name for name in names),
            *(live.SEQ_PREFIX + name for name in names),
        )


@pytest.fixture
def group(new_group) -> str:
    return new_group()


@pytest.fixture
def pushed(monkeypatch) -> list[tuple[str, str]]:
    messages: list[tuple[str, str]] = []
    monkeypatch.setattr(live, "_group_send", lambda group, html: messages.append((group, html)))
    return messages


def marks(pushed: list[tuple[str, str]], group: str) -> list[tuple[str, str, int]]:
    """(kind, epoch, number) of each message sent to `group`."""
    found = []
    for to, html in pushed:
        if to == group:
            kind, epoch, number = html.removeprefix("<!--").split("-->")[0].split()
            found.append((kind, epoch, int(number)))
    return found


def test_it_numbers_each_groups_fragments_in_order(group, new_group, pushed):
    other = new_group()
    live.send(group, "<p>one</p>")
    live.send(group, "<p>two</p>")
    live.send(other, "<p>elsewhere</p>")
    (_, epoch, _), *_ = marks(pushed, group)
    assert pushed[0] == (group, f"<!--live {epoch} 1--><p>one</p>")
    assert marks(pushed, group) == [("live", epoch, 1), ("live", epoch, 2)]
    assert marks(pushed, other) == [("live", epoch, 1)]


def test_a_heartbeat_tells_a_watched_group_the_number_of_its_last_fragment(
    group, new_group, pushed
):
    unwatched = new_group()
    live.send(unwatched, "<p>for nobody</p>")
    events.watch(group, +1)
    live.send(group, "<p>one</p>")
    live.send(group, "<p>two</p>")
    live.beat()
    events.watch(group, -1)
    (_, epoch, _), *_ = marks(pushed, group)
    assert marks(pushed, group)[-1] == ("beat", epoch, 2)
    assert [kind for kind, _, _ in marks(pushed, unwatched)] == ["live"]


def test_a_group_without_fragments_beats_zero(group, pushed):
    events.watch(group, +1)
    live.beat()
    events.watch(group, -1)
    [(kind, _, number)] = marks(pushed, group)
    assert (kind, number) == ("beat", 0)


def test_a_page_that_left_is_not_beaten_for(group, pushed):
    events.watch(group, +1)
    events.watch(group, -1)
    live.beat()
    assert marks(pushed, group) == []


@pytest.mark.parametrize("mode", ["redis"], indirect=True)
def test_the_next_heartbeat_tells_a_flushed_redis_who_watches(group, pushed):
    events.watch(group, +1)
    assert events.watched(group) == [True]
    redis.Redis.from_url(REDIS_URL).delete(events.WATCHED_PREFIX + group)  # what FLUSHDB does
    assert events.watched(group) == [False]
    live.beat()
    assert events.watched(group) == [True]
    events.watch(group, -1)


@pytest.mark.parametrize("mode", ["redis"], indirect=True)
def test_a_flushed_redis_numbers_in_a_new_epoch(group, pushed):
    live.send(group, "<p>before</p>")
    client = redis.Redis.from_url(REDIS_URL)
    epoch = client.get(live.EPOCH_KEY)
    # FLUSHDB, as far as this group is concerned (the epoch is shared: put it back after).
    client.delete(live.EPOCH_KEY, live.SEQ_PREFIX + group)
    try:
        live.send(group, "<p>after</p>")
    finally:
        client.set(live.EPOCH_KEY, epoch)
    (_, before, _), (_, after, number) = marks(pushed, group)
    assert after != before and number == 1
