"""The state machines' discipline: every status or claim change is one conditional UPDATE,
and a move announces only the rows it changed."""

import importlib
import threading

import pytest
from django.apps import apps
from django.db import connection, transaction

from agents import actions, dispatch, events, llm, steps
from agents.models import Job, JobStatus, LLMCall, Subtask, SubtaskStatus, WaitingFor

pytestmark = pytest.mark.django_db

fill_migration = importlib.import_module("agents.migrations.0016_job_waiting_for")


def job(status: str = JobStatus.WORKING, **fields) -> Job:
    return Job.objects.create(title="t", description="d", status=status, **fields)


# Waiting reasons


def test_existing_waiting_jobs_get_their_code_from_their_sentence():
    no_agent = job(JobStatus.WAITING, status_reason=dispatch.NO_AGENT)
    no_specialist = job(JobStatus.WAITING, status_reason=dispatch.NO_SPECIALIST)
    unplanned = job(
        JobStatus.WAITING,
        status_reason="Waiting for an enabled orchestrator agent to plan this job.",
    )
    reviewed = job(
        JobStatus.WAITING,
        review_plan=True,
        planned_at="2026-01-01T00:00:00Z",
        status_reason="The plan awaits an operator's review. notes",
    )
    working = job(JobStatus.WORKING, status_reason=dispatch.NO_AGENT)

    fill_migration.fill_waiting_for(apps, None)

    codes = dict(Job.objects.values_list("pk", "waiting_for"))
    assert codes == {
        no_agent.pk: WaitingFor.AGENT,
        no_specialist.pk: WaitingFor.SPECIALIST,
        unplanned.pk: WaitingFor.ORCHESTRATOR,
        reviewed.pk: WaitingFor.REVIEW,
        working.pk: "",
    }


def test_a_job_that_stops_waiting_waits_for_nothing():
    waiting = job(JobStatus.WAITING, waiting_for=WaitingFor.AGENT)
    moved = job(JobStatus.WAITING, waiting_for=WaitingFor.SPECIALIST)

    assert waiting.transition(JobStatus.WAITING, JobStatus.CANCELLED)
    Job.objects.filter(pk=moved.pk).move(JobStatus.WAITING, JobStatus.WORKING)

    waiting.refresh_from_db()
    assert waiting.waiting_for == ""
    assert Job.objects.get(pk=moved.pk).waiting_for == ""


def test_a_retried_job_whose_plan_was_never_approved_waits_for_review_again():
    cancelled = job(JobStatus.CANCELLED, review_plan=True, planned_at="2026-01-01T00:00:00Z")
    Subtask.objects.create(job=cancelled, key="a", type="t", status=SubtaskStatus.CANCELLED)

    assert actions.retry_job(cancelled)

    cancelled.refresh_from_db()
    assert (cancelled.status, cancelled.waiting_for) == (JobStatus.WAITING, WaitingFor.REVIEW)
    assert cancelled.awaiting_review


# The synthesis claim


def test_of_two_workers_given_one_synthesis_one_takes_it():
    first = job(JobStatus.SYNTHESIZING)
    second = Job.objects.get(pk=first.pk)  # read by the other worker before the claim

    assert first.claim(JobStatus.SYNTHESIZING, lease_owner="w1")
    assert first.claimed_at is not None and first.lease_owner == "w1"
    assert not second.claim(JobStatus.SYNTHESIZING, lease_owner="w2")
    assert Job.objects.get(pk=first.pk).lease_owner == "w1"

    assert first.release(JobStatus.SYNTHESIZING)
    assert first.claimed_at is None
    assert not first.release(JobStatus.SYNTHESIZING)  # nothing held
    assert second.claim(JobStatus.SYNTHESIZING, lease_owner="w2")


def test_a_claim_needs_the_status_expected():
    queued = job(JobStatus.QUEUED)
    assert not queued.claim(JobStatus.SYNTHESIZING)
    assert Job.objects.get(pk=queued.pk).claimed_at is None


def test_a_synthesis_whose_job_moved_on_is_not_given_back_nor_sent_again(
    sent, django_capture_on_commit_callbacks
):
    held = job(JobStatus.SYNTHESIZING)
    assert held.claim(JobStatus.SYNTHESIZING)
    # Cancelled while its call was failing; the claim is the finished job's own business.
    Job.objects.filter(pk=held.pk).update(status=JobStatus.CANCELLED)

    with django_capture_on_commit_callbacks(execute=True):
        steps._retry_job_step(
            held, JobStatus.SYNTHESIZING, LLMCall.Purpose.SYNTHESIS, llm.LLMError("timeout")
        )

    assert ("synthesize_job", (held.pk,)) not in sent
    assert Job.objects.get(pk=held.pk).claimed_at is not None


def test_a_failed_synthesis_call_gives_the_claim_back_and_tries_again(
    sent, django_capture_on_commit_callbacks
):
    held = job(JobStatus.SYNTHESIZING)
    assert held.claim(JobStatus.SYNTHESIZING)

    with django_capture_on_commit_callbacks(execute=True):
        steps._retry_job_step(
            held, JobStatus.SYNTHESIZING, LLMCall.Purpose.SYNTHESIS, llm.LLMError("timeout")
        )

    assert sent == [("synthesize_job", (held.pk,))]
    assert Job.objects.get(pk=held.pk).claimed_at is None


# Bulk moves announce what they changed


def _blocked_on_its_update(started: threading.Event):
    """A statement wrapper that says when the thread's UPDATE is sent (and so waits for the
    other transaction's row locks)."""

    def wrapper(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("UPDATE"):
            started.set()
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["job", "subtask"])
def test_two_moves_of_the_same_rows_announce_each_row_once(monkeypatch, kind):
    announced = []
    monkeypatch.setattr(events, "job_changed", lambda pk, **kw: announced.append(pk))
    monkeypatch.setattr(events, "subtask_changed", lambda pk, job_id, **kw: announced.append(pk))
    parent = job(JobStatus.WORKING)
    if kind == "job":
        rows, ids = Job.objects.filter(pk=parent.pk), [parent.pk]
        expected, new = JobStatus.WORKING, JobStatus.CANCELLED
    else:
        subs = [Subtask.objects.create(job=parent, key=k, type="t") for k in ("a", "b")]
        rows, ids = Subtask.objects.filter(job=parent), [s.pk for s in subs]
        expected, new = SubtaskStatus.WAITING, SubtaskStatus.CANCELLED
    updating = threading.Event()

    def second_move():
        try:
            with connection.execute_wrapper(_blocked_on_its_update(updating)):
                rows.move(expected, new)  # reads the rows as they were, then waits
        finally:
            connection.close()

    with transaction.atomic():
        assert rows.move(expected, new) == ids
        other = threading.Thread(target=second_move)
        other.start()
        assert updating.wait(10)
        other.join(0.3)  # give its UPDATE the time to reach the locked rows
    other.join(30)

    assert sorted(announced) == ids  # once each, by the move that changed them
