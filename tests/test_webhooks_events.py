"""Which moves are webhook events, and how they become deliveries: agents.events announces
each status move after commit; webhooks makes deliveries only for moves some enabled
endpoint wants, asking the database at most once per few seconds."""

import json

import pytest
from django.utils import timezone

from agents import calls, events
from agents.models import Job, JobStatus, Subtask, SubtaskStatus
from webhooks import models as webhook_models
from webhooks import triggers
from webhooks.models import Delivery, Endpoint, EventType

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_subscriptions():
    webhook_models.forget_subscriptions()
    yield
    webhook_models.forget_subscriptions()


def job(**fields) -> Job:
    return Job.objects.create(title="T", description="D", **fields)


@pytest.mark.parametrize(
    "status, fields, expected",
    [
        ("completed", {}, ["job.completed"]),
        ("cancelled", {}, ["job.cancelled"]),
        ("failed", {"error": "1 of 2 subtasks failed."}, ["job.failed"]),
        ("failed", {"error": calls.BUDGET_EXCEEDED}, ["job.failed", "budget.exceeded"]),
        ("failed", {"error": calls.UNPRICED.format(model="m")}, ["job.failed", "budget.exceeded"]),
        ("waiting", {"review_plan": True, "planned": True}, ["job.awaiting_review"]),
        ("waiting", {"review_plan": True}, []),  # no agent yet, not a plan to review
        ("waiting", {"planned": True}, []),
        ("working", {}, []),
    ],
)
def test_which_job_moves_are_events(status, fields, expected):
    planned = fields.pop("planned", False)
    moved = job(status=status, planned_at=timezone.now() if planned else None, **fields)
    assert triggers.events_for(moved, status) == expected


def test_moves_that_cannot_be_events_ask_nothing(django_assert_num_queries, sent_tasks):
    moves = [
        events.Announcement("job.status", 1, {"job_id": 1, "status": "working"}),
        events.Announcement(
            "subtask.status", 1, {"job_id": 1, "subtask_id": 2, "status": "queued"}
        ),
        events.Announcement("state.version", 1, {"job_id": 1, "version": 3}),
    ]
    with django_assert_num_queries(0):
        triggers.on_announcements(moves)
    assert sent_tasks == []


def test_with_no_endpoint_a_process_asks_once_in_a_while(django_assert_num_queries, sent_tasks):
    done = [events.Announcement("job.status", 1, {"job_id": 1, "status": "completed"})]
    with django_assert_num_queries(1):
        triggers.on_announcements(done)
    with django_assert_num_queries(0):
        for _ in range(100):
            triggers.on_announcements(done)
    assert sent_tasks == []


def test_a_move_some_endpoint_wants_becomes_a_delivery(
    sent_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        Endpoint.objects.create(url="https://hooks.example.org/", events=["subtask.failed"])
    parent = job(status=JobStatus.COMPLETED)
    sub = Subtask.objects.create(job=parent, key="a", type="research", status="failed")
    failed = {"job_id": parent.pk, "subtask_id": sub.pk, "status": "failed"}
    with django_capture_on_commit_callbacks(execute=True):
        triggers.on_announcements(
            [
                events.Announcement("job.status", 1, {"job_id": parent.pk, "status": "completed"}),
                events.Announcement("subtask.status", 1, failed),
            ]
        )
    # Made here, not by a message that could be lost; then sent by its `deliver` task.
    [delivery] = Delivery.objects.all()
    assert delivery.event == EventType.SUBTASK_FAILED
    assert sent_tasks == [("webhooks.tasks.deliver", (delivery.pk, 1))]


def test_a_disabled_endpoint_wants_nothing(sent_tasks):
    Endpoint.objects.create(
        url="https://hooks.example.org/", events=["job.completed"], enabled=False
    )
    triggers.on_announcements(
        [events.Announcement("job.status", 1, {"job_id": 1, "status": "completed"})]
    )
    assert sent_tasks == []


def test_a_transition_reaches_the_hook_after_commit(
    settings, sent_tasks, django_capture_on_commit_callbacks
):
    settings.LIVE_WINDOW_S = 5  # the flusher thread waits; this test flushes itself
    Endpoint.objects.create(url="https://hooks.example.org/", events=["job.cancelled"])
    moved = job(status=JobStatus.WORKING)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert moved.transition(JobStatus.WORKING, JobStatus.CANCELLED)
    events.flush_now()
    assert not Delivery.objects.exists()  # nothing before the commit
    for callback in callbacks:
        callback()
    events.flush_now()
    [delivery] = Delivery.objects.filter(job=moved)
    assert delivery.event == EventType.JOB_CANCELLED


def test_deliveries_go_to_each_subscribed_endpoint_once(
    sent_tasks, django_capture_on_commit_callbacks
):
    wants = Endpoint.objects.create(url="https://a.example.org/", events=["job.failed"])
    both = Endpoint.objects.create(
        url="https://b.example.org/", events=["job.failed", "budget.exceeded"]
    )
    Endpoint.objects.create(url="https://c.example.org/", events=["job.completed"])
    failed = job(status=JobStatus.FAILED, error=calls.BUDGET_EXCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        made = triggers.create_deliveries("job", failed.pk, "failed", "key-1")
        again = triggers.create_deliveries("job", failed.pk, "failed", "key-1")  # redelivered
    assert again == []
    rows = Delivery.objects.filter(pk__in=made)
    assert sorted(rows.values_list("endpoint_id", "event")) == sorted(
        [
            (wants.pk, EventType.JOB_FAILED),
            (both.pk, EventType.JOB_FAILED),
            (both.pk, EventType.BUDGET_EXCEEDED),
        ]
    )
    assert sorted(sent_tasks) == sorted(("webhooks.tasks.deliver", (pk, 1)) for pk in made)


def test_a_failed_subtask_names_itself(sent_tasks):
    Endpoint.objects.create(url="https://a.example.org/", events=["subtask.failed"])
    parent = job(status=JobStatus.WORKING)
    sub = Subtask.objects.create(
        job=parent, key="code", type="coding", status=SubtaskStatus.FAILED, error="HTTP 500"
    )
    [made] = triggers.create_deliveries("subtask", sub.pk, "failed", "k")
    data = json.loads(Delivery.objects.get(pk=made).body)["data"]
    assert data["job_id"] == parent.pk
    assert data["subtask"] == {
        "id": sub.pk,
        "key": "code",
        "type": "coding",
        "status": "failed",
        "error": "HTTP 500",
    }
