"""Events outlive a killed process: a process commits a job's completion and is killed
(SIGKILL) before its flusher relays anything; the stack's worker relays the outbox row it
left, so a webhook endpoint still gets `job.completed` and an open event stream still serves
the move, with its `event_id`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import redis

from agents.models import OutboxEvent
from stream import readers
from webhooks.models import Delivery, Endpoint

from .cast import PASSWORD
from .stack import VENV_BIN, login, start_stack, wait_until
from .webhook_receiver import running_receiver

pytestmark = [
    pytest.mark.stack,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the event stream needs Redis"),
]

# Commits a job's completion, says so, then waits: its flusher holds the events for
# LIVE_WINDOW_S (set large), so only the outbox can get them out once it is killed.
COMMIT_AND_HANG = """
import time
from django.db import transaction
from agents.models import Job, JobStatus
with transaction.atomic():
    job = Job.objects.create(title="Killed before relaying", description="D", status="working")
    job.transition(JobStatus.WORKING, JobStatus.COMPLETED, result="Done before the kill.")
print("committed", job.pk, flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def outbox_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("outbox-stack"),
            exclusive=True,
            WEBHOOK_ALLOW_PRIVATE="true",
            SSE_KEEPALIVE_S="1",
            OUTBOX_GRACE_S="3",
        )
    yield running
    running.stop()


def commit_then_die(stack) -> int:
    """Run COMMIT_AND_HANG in its own process, SIGKILL it after its commit; the job's id."""
    env = {**stack.env, "LIVE_WINDOW_S": "600"}
    proc = subprocess.Popen(
        [str(VENV_BIN / "python"), "manage.py", "shell", "--no-imports", "-c", COMMIT_AND_HANG],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said = []
    try:
        for line in proc.stdout:  # ends if it dies first
            said.append(line)
            if line.startswith("committed"):
                return int(line.split()[1])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    raise AssertionError("it died before its commit:\n" + "".join(said))


def stream_events(lines, deadline: float):
    """SSE events from a line iterator (keep-alives come every second) until the deadline."""
    block: dict = {}
    for line in lines:
        if time.monotonic() > deadline:
            return
        if line:
            name, _, value = line.partition(":")
            if name:
                block[name] = value.removeprefix(" ")
            continue
        if "event" in block:
            yield block["event"], json.loads(block["data"])
        block = {}


def test_a_killed_process_events_reach_the_webhook_and_the_stream(outbox_stack, seeded):
    browser = login(outbox_stack.base_url, "bob", PASSWORD)
    with running_receiver() as receiver:
        Endpoint.objects.create(url=receiver.url, events=["job.completed"])
        url = f"{outbox_stack.base_url}/api/v1/events"
        with browser.stream("GET", url, timeout=30) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == ": connected"  # a stream is open: moves are kept
            presence = redis.Redis.from_url(outbox_stack.env["REDIS_URL"])
            wait_until(lambda: presence.exists(readers.READERS_KEY), "the stream's presence", 10)
            job_id = commit_then_die(outbox_stack)
            # Killed before its flusher ran: what it announced is only in the outbox.
            assert OutboxEvent.objects.filter(job_id=job_id).exists()

            [hook] = receiver.wait_for(1, timeout=60)
            deadline = time.monotonic() + 60
            completed = {"job_id": job_id, "status": "completed"}
            served = next(
                (
                    data
                    for event, data in stream_events(lines, deadline)
                    if event == "job.status" and data == {**data, **completed}
                ),
                None,
            )
    assert served is not None, "the stream never served the killed process's move"
    payload = json.loads(hook.body)
    assert (payload["type"], payload["data"]["job_id"]) == ("job.completed", job_id)
    assert len(served["event_id"]) == 32
    wait_until(
        lambda: not OutboxEvent.objects.filter(job_id=job_id).exists(), "the rows relayed", 10
    )
    assert Delivery.objects.filter(job_id=job_id).count() == 1
