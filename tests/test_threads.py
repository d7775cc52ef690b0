"""The registry of background threads: each starts once, stops when asked, and all are listed;
the live events flusher waits out a window shortened meanwhile, or none after flush_now."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import transaction

import dashboard.live
import orchestrator_site.standalone
from agents import events, leases, limiter, tasks, threads
from agents.events import Batch

EVERY_THREAD = {
    "baton-leases": leases,
    "baton-slots": limiter,
    "baton-live": events,
    "baton-reconciler": tasks,
    "baton-render": dashboard.live,
    "baton-beat": dashboard.live,
    "baton-send": dashboard.live,
    "celery-worker": orchestrator_site.standalone,
}


@pytest.fixture
def sleeper():
    """A background thread that runs until it is stopped, registered for the test alone."""
    stop = threading.Event()
    runs: list[int] = []

    def run() -> None:
        runs.append(1)
        stop.wait()

    entry = threads.register("test-sleeper", __name__, run, stop, wake=None)
    yield entry, runs
    entry.stop(timeout=2)
    threads._registry.pop("test-sleeper")


def test_it_starts_a_thread_once(sleeper):
    entry, runs = sleeper
    assert entry.start() is True
    assert entry.start() is False
    assert entry.alive()
    assert runs == [1]
    assert [t.name for t in threading.enumerate()].count("test-sleeper") == 1


def test_it_stops_and_starts_again(sleeper):
    entry, runs = sleeper
    entry.start()
    assert entry.stop(timeout=2) is True
    assert not entry.alive()
    assert entry.start() is True  # the stop event is cleared for the new thread
    assert entry.alive()
    assert runs == [1, 1]


def test_a_thread_without_a_stop_event_is_not_stopped():
    entry = threads.register("test-forever", __name__, lambda: None)
    try:
        assert entry.stop() is True  # never started: nothing runs
        assert entry.stop_event is None
    finally:
        threads._registry.pop("test-forever")


def test_a_name_belongs_to_one_owner(sleeper):
    assert threads.register("test-sleeper", __name__, lambda: None, sleeper[0].stop_event)
    with pytest.raises(ValueError, match="already registered"):
        threads.register("test-sleeper", "somewhere.else", lambda: None)


def test_it_lists_every_background_thread():
    listed = {entry.name: entry.owner for entry in threads.registered()}
    assert {name: module.__name__ for name, module in EVERY_THREAD.items()}.items() <= (
        listed.items()
    )
    assert all(entry.target is not None for entry in threads.registered())


@pytest.mark.django_db(transaction=True)
def test_the_flusher_keeps_a_window_shortened_meanwhile(settings):
    published: list[Batch] = []
    events.flush_now()
    before = events._publisher
    events.set_publisher(published.append)
    try:
        events.watch(events.BOARD_GROUP, 1)
        settings.LIVE_WINDOW_S = 60  # an earlier test's: the flusher waits out a minute
        with transaction.atomic():
            events.job_changed(1)
        time.sleep(0.2)
        assert published == []
        settings.LIVE_WINDOW_S = 0.05
        with transaction.atomic():
            events.job_changed(2)
        deadline = time.monotonic() + 5
        while not published and time.monotonic() < deadline:
            time.sleep(0.02)
        assert published and set(published[0].jobs) == {1, 2}
    finally:
        events.watch(events.BOARD_GROUP, -1)
        events.set_publisher(before)


@pytest.mark.django_db(transaction=True)
def test_flush_now_leaves_the_flusher_nothing_to_wait_for(settings):
    settings.LIVE_WINDOW_S = 60
    with transaction.atomic():
        events.job_changed(3)
    time.sleep(0.1)
    events.flush_now()
    # The flusher woke, found the batch empty, and waits for the next announcement.
    time.sleep(0.1)
    assert not events._batch
    assert events.flusher.alive()
