"""The live events (agents/events.py): changes announced in a transaction are gathered into a
batch and flushed after a window; the flusher keeps a window shortened meanwhile, and waits
for nothing after flush_now."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from agents import events
from agents.events import Batch


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
