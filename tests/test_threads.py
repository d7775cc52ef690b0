"""The registry of background threads: each starts once, stops when asked, and all are listed.
(The live events flusher's waits are in test_events.py.)"""

from __future__ import annotations

import threading

import pytest

import dashboard.live
import orchestrator_site.standalone
from agents import events, leases, limiter, schedules, tasks, threads

EVERY_THREAD = {
    "baton-leases": leases,
    "baton-slots": limiter,
    "baton-live": events,
    "baton-reconciler": tasks,
    "baton-schedules": schedules,
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
