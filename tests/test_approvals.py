"""Human approval of a step: the gate before a subtask's model call, the request that pauses
it, an operator's decision, the timeout, and the awaiting status in dispatch, settle and
cancel. Jobs run in this thread on the LLM simulator (tests/inprocess.py)."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from agents import actions, approvals, dispatch, lifecycle, recovery, steps
from agents.approvals import ApprovalError
from agents.models import (
    Agent,
    Approval,
    ApprovalRule,
    AuditEntry,
    Job,
    JobStatus,
    LLMCall,
    SharedState,
    Subtask,
    SubtaskStatus,
    ToolCall,
)

from .cast import person
from .inprocess import deliver, run_job, simulated_llm, team_on_a_model_of_its_own

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rules():
    approvals._rules.forget()
    yield
    approvals._rules.forget()


@pytest.fixture
def bob() -> User:
    return person("bob")


def coder_needs_approval() -> None:
    Agent.objects.filter(slug="coder").update(needs_approval=True)


def awaiting(job: Job) -> list[Subtask]:
    return list(job.subtasks.filter(status=SubtaskStatus.AWAITING_APPROVAL).order_by("pk"))


def pending_of(sub: Subtask) -> Approval:
    return sub.approvals.get(decision=Approval.Decision.PENDING)


# Without approval


def claimed(agent: Agent, *, type_: str = "coding") -> Subtask:
    """A subtask of a working job, claimed by a worker as a run claims it."""
    job = Job.objects.create(
        title="J", description="Do it.", status=JobStatus.WORKING, planned_at=timezone.now()
    )
    SharedState.objects.create(job=job)
    sub = Subtask.objects.create(
        job=job,
        key="s1",
        type=type_,
        payload={"description": "write it"},
        agent=agent,
        status=SubtaskStatus.QUEUED,
    )
    return steps._claim_subtask(sub.pk)


def test_a_step_needing_no_approval_passes_its_messages_without_a_query(
    django_assert_num_queries,
):
    sub = claimed(Agent.objects.create(name="Coder", slug="coder", specialties=["coding"]))
    approvals._rules.get()  # the rules as a worker has them cached
    messages = steps._prompt(sub)
    with django_assert_num_queries(0):
        assert approvals.gate(sub, messages) is messages
    assert sub.status == SubtaskStatus.WORKING


def test_a_rule_on_its_type_pauses_a_step_and_shows_what_would_be_sent(bob):
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    approvals.add_rule("type", " Coding ", user=bob)
    assert ApprovalRule.objects.get().name == "coding"  # named as plans name types
    sub = claimed(agent)
    messages = steps._prompt(sub)

    assert approvals.gate(sub, messages) is None

    sub.refresh_from_db()
    assert sub.status == SubtaskStatus.AWAITING_APPROVAL
    assert (sub.lease_owner, sub.lease_expires_at) == ("", None)  # no worker holds it
    approval = pending_of(sub)
    assert approval.proposed == messages
    assert approval.why == "subtask type coding needs approval"
    assert approval.expires_at is None  # no timeout set
    # It holds no slot of its agent's.
    assert Agent.objects.with_load().get(pk=agent.pk).load == 0


def test_a_request_by_an_attempt_that_lost_its_subtask_changes_nothing():
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    sub = claimed(agent)
    Subtask.objects.filter(pk=sub.pk).update(attempts=sub.attempts + 1)  # taken over since
    assert approvals.request(sub, proposed=[], why="test") is None
    assert not Approval.objects.exists()
    assert Subtask.objects.get(pk=sub.pk).status == SubtaskStatus.WORKING


# The whole run, on the simulator


def test_approve_edit_and_reject_steps_of_a_job(
    settings, monkeypatch, sent, django_capture_on_commit_callbacks, bob
):
    with simulated_llm(settings):
        team_on_a_model_of_its_own(monkeypatch)
        coder_needs_approval()
        job = run_job(sent, django_capture_on_commit_callbacks)

        # The plan ran; every step of the coder's paused before its model call.
        assert job.status == JobStatus.WORKING
        paused = awaiting(job)
        assert paused, [s.status for s in job.subtasks.all()]
        first = paused[0]
        assert not LLMCall.objects.filter(subtask=first).exists()
        approval = pending_of(first)
        assert approval.proposed[-1]["role"] == "user"

        # Rejected with a reason: proposed again, with the reason after what was rejected.
        with django_capture_on_commit_callbacks(execute=True):
            approvals.decide(approval, bob, "reject", feedback="Mention the sea.")
        deliver(sent, django_capture_on_commit_callbacks)
        first.refresh_from_db()
        assert first.status == SubtaskStatus.AWAITING_APPROVAL
        again = pending_of(first)
        assert again.proposed[:-1] == approval.proposed
        assert again.proposed[-1] == {
            "role": "user",
            "content": "An operator rejected this step as proposed: Mention the sea.",
        }
        assert not LLMCall.objects.filter(subtask=first).exists()

        # Edited and approved: the edited message is what the model gets.
        edited = approvals.with_last_user_text(again.proposed, "Write about the sea, briefly.")
        with django_capture_on_commit_callbacks(execute=True):
            approvals.decide(again, bob, "edit", edited=edited)
        deliver(sent, django_capture_on_commit_callbacks)
        first.refresh_from_db()
        assert first.status == SubtaskStatus.COMPLETED, first.error
        call = LLMCall.objects.get(subtask=first)
        assert call.messages == edited

        # The others: approved as proposed, until the job completes.
        for _ in range(20):
            job.refresh_from_db()
            left = awaiting(job)
            if not left:
                break
            sub = left[0]
            proposal = pending_of(sub)
            with django_capture_on_commit_callbacks(execute=True):
                approvals.decide(proposal, bob, "approve")
            deliver(sent, django_capture_on_commit_callbacks)
            sub.refresh_from_db()
            assert sub.status == SubtaskStatus.COMPLETED
            assert LLMCall.objects.get(subtask=sub).messages == proposal.proposed

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    actions_audited = set(
        AuditEntry.objects.filter(job=job, action__startswith="approval.").values_list(
            "action", flat=True
        )
    )
    assert actions_audited >= {"approval.reject", "approval.edit"}
    rejected = AuditEntry.objects.get(job=job, action="approval.reject")
    assert rejected.actor == bob and "Mention the sea." in rejected.detail


def test_dependents_wait_for_a_step_awaiting_approval_and_others_keep_running(
    settings, monkeypatch, sent, django_capture_on_commit_callbacks, bob
):
    """The reviewer alone needs approval: research and coding run, review pauses, and the
    job is neither settled nor failed while it waits."""
    with simulated_llm(settings):
        team_on_a_model_of_its_own(monkeypatch)
        Agent.objects.filter(slug="coder").update(specialties=["research", "coding"])
        Agent.objects.create(
            name="Reviewer",
            slug="reviewer",
            specialties=["review"],
            model=Agent.objects.get(slug="coder").model,
            needs_approval=True,
        )
        job = run_job(sent, django_capture_on_commit_callbacks, "Design a rate limiter")
        statuses = dict(job.subtasks.values_list("type", "status"))
        assert statuses.get("review") == SubtaskStatus.AWAITING_APPROVAL, statuses
        assert {s for t, s in statuses.items() if t != "review"} == {SubtaskStatus.COMPLETED}
        assert job.status == JobStatus.WORKING

        # Settling and the reconciler leave it be.
        lifecycle.settle_job_locked(job.pk)
        recovery.reconcile()
        review = job.subtasks.get(type="review")
        assert review.status == SubtaskStatus.AWAITING_APPROVAL
        assert Job.objects.get(pk=job.pk).status == JobStatus.WORKING

        with django_capture_on_commit_callbacks(execute=True):
            approvals.decide(pending_of(review), bob, "approve")
        deliver(sent, django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error


def test_dispatch_holds_the_dependents_of_a_step_awaiting_approval():
    job = Job.objects.create(
        title="J", description="d", status=JobStatus.WORKING, planned_at=timezone.now()
    )
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    paused = job.subtasks.create(
        key="a", type="coding", agent=agent, status=SubtaskStatus.AWAITING_APPROVAL
    )
    after = job.subtasks.create(key="b", type="coding")
    after.depends_on.add(paused)
    assert list(dispatch._runnable_rows(timezone.now())) == []
    paused.transition(SubtaskStatus.AWAITING_APPROVAL, SubtaskStatus.COMPLETED)
    assert [row[2] for row in dispatch._runnable_rows(timezone.now())] == [after.pk]


def test_a_job_with_a_step_awaiting_approval_is_not_settled():
    job = Job.objects.create(
        title="J", description="d", status=JobStatus.WORKING, planned_at=timezone.now()
    )
    job.subtasks.create(key="a", type="coding", status=SubtaskStatus.COMPLETED)
    job.subtasks.create(key="b", type="coding", status=SubtaskStatus.AWAITING_APPROVAL)
    job.subtasks.create(key="c", type="coding", status=SubtaskStatus.FAILED)
    lifecycle.settle_job_locked(job.pk)
    assert Job.objects.get(pk=job.pk).status == JobStatus.WORKING


def paused_step() -> Approval:
    """A coder's step paused for approval, through the gate."""
    agent = Agent.objects.create(
        name="Coder", slug="coder", specialties=["coding"], needs_approval=True
    )
    sub = claimed(agent)
    assert approvals.gate(sub, steps._prompt(sub)) is None
    return pending_of(sub)


def test_cancelling_the_job_cancels_a_step_awaiting_approval_which_can_then_not_be_decided(
    bob, sent, django_capture_on_commit_callbacks
):
    approval = paused_step()
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.cancel_job(approval.job, user=bob)
    sub = Subtask.objects.get(pk=approval.subtask_id)
    assert sub.status == SubtaskStatus.CANCELLED
    with pytest.raises(ApprovalError, match="is cancelled: its approval can no longer be decided"):
        approvals.decide(approval, bob, "approve")
    assert Approval.objects.get(pk=approval.pk).pending
    assert not AuditEntry.objects.filter(action__startswith="approval.").exists()
    assert not approvals.pending().exists()

    # Retried, it asks the same question again.
    with django_capture_on_commit_callbacks(execute=True):
        assert actions.retry_job(Job.objects.get(pk=approval.job_id), user=bob)
    Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.QUEUED)
    sub = steps._claim_subtask(sub.pk)
    assert approvals.gate(sub, steps._prompt(sub)) is None
    assert list(approvals.pending()) == [approval]


def test_a_decision_is_taken_once(bob, sent, django_capture_on_commit_callbacks):
    approval = paused_step()
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approval, bob, "approve")
    assert sent == [("run_subtask", (approval.subtask_id,))]
    sub = Subtask.objects.get(pk=approval.subtask_id)
    assert (sub.status, sub.agent.slug) == (SubtaskStatus.QUEUED, "coder")
    with pytest.raises(ApprovalError, match="already decided: approved by bob"):
        approvals.decide(approval, bob, "reject", feedback="no")
    assert Approval.objects.get(pk=approval.pk).decision == Approval.Decision.APPROVED
    assert AuditEntry.objects.filter(action__startswith="approval.").count() == 1


@pytest.mark.parametrize(
    ("action", "edited", "feedback", "error"),
    [
        ("reject", None, "  ", "Give a reason"),
        ("edit", "not a list", "", "non-empty list"),
        ("edit", [{"role": "user"}], "", 'a text "content"'),
        ("edit", [{"role": "user", "content": " "}], "", "cannot be empty"),
        ("delete", None, "", "Choose approve, edit or reject"),
        ("reject", None, "x" * 4001, "4000 characters"),
    ],
)
def test_bad_decisions_are_refused_and_change_nothing(bob, action, edited, feedback, error):
    approval = paused_step()
    with pytest.raises(ApprovalError, match=error):
        approvals.decide(approval, bob, action, edited=edited, feedback=feedback)
    assert Approval.objects.get(pk=approval.pk).pending
    assert Subtask.objects.get(pk=approval.subtask_id).status == SubtaskStatus.AWAITING_APPROVAL


# Tool calls


def paused_tool_call() -> tuple[Approval, ToolCall]:
    agent = Agent.objects.create(
        name="Coder", slug="coder", specialties=["coding"], tools=["write_state"]
    )
    approvals.add_rule("tool", "write_state")
    assert approvals.tool_needs_approval("write_state") == "tool write_state needs approval"
    assert approvals.tool_needs_approval("read_state") is None
    sub = claimed(agent)
    row = ToolCall.objects.create(
        job_id=sub.job_id,
        subtask=sub,
        agent=agent,
        call_id="call_1",
        name="write_state",
        arguments='{"key": "draft", "value": "x"}',
    )
    approval = approvals.request(
        sub,
        proposed=json.loads(row.arguments),
        why="tool write_state needs approval",
        tool_call=row,
    )
    row.refresh_from_db()
    assert row.status == ToolCall.Status.AWAITING_APPROVAL
    return approval, row


def test_an_edited_tool_call_runs_with_the_edited_arguments(bob):
    approval, row = paused_tool_call()
    with pytest.raises(ApprovalError, match="JSON object"):
        approvals.decide(approval, bob, "edit", edited=["not", "an", "object"])
    approvals.decide(approval, bob, "edit", edited={"key": "draft", "value": "y"})
    row.refresh_from_db()
    assert row.status == ToolCall.Status.APPROVED
    assert json.loads(row.arguments) == {"key": "draft", "value": "y"}
    assert Subtask.objects.get(pk=row.subtask_id).status == SubtaskStatus.QUEUED


def test_a_rejected_tool_call_keeps_the_reason_for_the_model(bob):
    approval, row = paused_tool_call()
    approvals.decide(approval, bob, "reject", feedback="Not that key.")
    row.refresh_from_db()
    assert row.status == ToolCall.Status.REJECTED
    assert "Not that key." in row.error
    assert Approval.objects.get(pk=approval.pk).feedback == "Not that key."


def test_a_decision_never_reopens_a_tool_call_that_already_ran(bob):
    approval, row = paused_tool_call()
    ToolCall.objects.filter(pk=row.pk).update(status=ToolCall.Status.DONE, result="ran once")
    approvals.decide(approval, bob, "approve")
    row.refresh_from_db()
    assert (row.status, row.result) == (ToolCall.Status.DONE, "ran once")  # not run again
    assert Subtask.objects.get(pk=row.subtask_id).status == SubtaskStatus.QUEUED


def test_a_tool_call_that_moved_on_is_not_asked_about(bob):
    agent = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    sub = claimed(agent)
    row = ToolCall.objects.create(
        job_id=sub.job_id, subtask=sub, name="write_state", status=ToolCall.Status.DONE
    )
    with pytest.raises(ApprovalError, match="moved on"):
        approvals.request(sub, proposed={}, why="tool write_state needs approval", tool_call=row)
    assert Subtask.objects.get(pk=sub.pk).status == SubtaskStatus.WORKING  # the pause undone
    assert ToolCall.objects.get(pk=row.pk).status == ToolCall.Status.DONE
    assert not Approval.objects.exists()


# Timeouts


def test_without_a_timeout_nothing_expires(settings):
    settings.APPROVAL_TIMEOUT_S = 0
    approval = paused_step()
    assert approval.expires_at is None
    assert approvals.expire(timezone.now() + timedelta(days=365)) == 0


def test_a_timed_out_step_is_rejected_by_the_system_and_fails(
    settings, sent, django_capture_on_commit_callbacks
):
    settings.APPROVAL_TIMEOUT_S = 60
    settings.APPROVAL_TIMEOUT_ACTION = "reject"
    approval = paused_step()
    assert approval.expires_at is not None
    assert approvals.expire(approval.expires_at - timedelta(seconds=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert approvals.expire(approval.expires_at) == 1
    approval.refresh_from_db()
    assert (approval.decision, approval.timed_out, approval.decided_by) == ("rejected", True, None)
    sub = Subtask.objects.get(pk=approval.subtask_id)
    assert sub.status == SubtaskStatus.FAILED
    assert "Not approved within 60 s" in sub.error
    assert Job.objects.get(pk=approval.job_id).status == JobStatus.FAILED
    entry = AuditEntry.objects.get(action="approval.reject")
    assert entry.actor is None and "timed out" in entry.detail
    assert not sent  # nothing runs

    # A retry asks again, with the same proposal and no reason.
    assert sub.can_retry
    with django_capture_on_commit_callbacks(execute=True):
        actions.retry_subtask(sub)
    Subtask.objects.filter(pk=sub.pk).update(status=SubtaskStatus.QUEUED)
    sub = steps._claim_subtask(sub.pk)
    assert approvals.gate(sub, steps._prompt(sub)) is None
    assert pending_of(sub).proposed == approval.proposed


def test_a_timed_out_step_is_approved_by_the_reconciler_when_that_is_the_default(
    settings, sent, django_capture_on_commit_callbacks
):
    settings.APPROVAL_TIMEOUT_S = 0.001
    settings.APPROVAL_TIMEOUT_ACTION = "approve"
    approval = paused_step()
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        recovery.reconcile()
    approval.refresh_from_db()
    assert (approval.decision, approval.timed_out) == ("approved", True)
    assert ("run_subtask", (approval.subtask_id,)) in sent
    assert AuditEntry.objects.get(action="approval.approve").actor is None


def test_a_timed_out_tool_call_is_rejected_and_its_step_goes_on(settings):
    settings.APPROVAL_TIMEOUT_S = 30
    settings.APPROVAL_TIMEOUT_ACTION = "reject"
    approval, row = paused_tool_call()
    assert approvals.expire(approval.expires_at) == 1
    row.refresh_from_db()
    assert row.status == ToolCall.Status.REJECTED
    assert row.error == "This tool call was not approved within 30 s: it did not run."
    assert Subtask.objects.get(pk=row.subtask_id).status == SubtaskStatus.QUEUED
