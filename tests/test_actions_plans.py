"""agents.actions.plans: each edit of a plan under review, and its approval, is one row in
the job's activity, written with the change or not at all."""

import pytest
from django.utils import timezone

from agents import actions
from agents.models import Job, JobStatus, SharedState, Subtask

from .auditing import AuditFailed, audit_rows, make_audit_fail
from .cast import person

pytestmark = pytest.mark.django_db

IN_REVIEW = {"title": "Reviewed", "description": "Plan.", "status": "waiting", "review_plan": True}


@pytest.fixture
def job() -> Job:
    """Planned, stopped for review: research and coding."""
    job = Job.objects.create(**IN_REVIEW, planned_at=timezone.now())
    SharedState.objects.create(job=job)
    for key in ("research", "coding"):
        Subtask.objects.create(job=job, key=key, type="research", payload={"description": key})
    return job


def plan(job: Job) -> list[tuple]:
    return list(job.subtasks.order_by("key").values_list("key", "type", "payload"))


def test_each_edit_and_the_approval_is_one_row(job):
    bob = person("bob")
    research, coding = (job.subtasks.get(key=key) for key in ("research", "coding"))
    assert actions.edit_subtask(research, description="Look.", type="writing", agent=None, user=bob)
    assert actions.delete_subtask(coding, user=bob)
    added = actions.add_subtask(
        job,
        key="docs",
        type="writing",
        description="Docs.",
        depends_on=[research],
        agent=None,
        user=bob,
    )
    assert added is not None
    assert actions.approve_plan(job, user=bob)
    assert audit_rows() == [
        ("edit_subtask", "bob", "writing: Look."),
        ("delete_subtask", "bob", "coding"),
        ("add_subtask", "bob", "writing: Docs."),
        ("approve_plan", "bob", ""),
    ]


def test_a_plan_no_longer_under_review_is_not_edited_nor_audited(job):
    sub = job.subtasks.get(key="research")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    assert not actions.edit_subtask(sub, description="Late.", type="writing", agent=None)
    assert not actions.delete_subtask(sub)
    assert job.subtasks.count() == 2 and audit_rows() == []


@pytest.mark.parametrize(
    "act",
    [
        lambda job, sub: actions.edit_subtask(sub, description="X.", type="writing", agent=None),
        lambda job, sub: actions.delete_subtask(sub),
        lambda job, sub: actions.add_subtask(
            job, key="docs", type="writing", description="D.", depends_on=[], agent=None
        ),
        lambda job, sub: actions.approve_plan(job),
    ],
    ids=["edit", "delete", "add", "approve"],
)
def test_a_failed_audit_undoes_the_change(job, monkeypatch, act):
    before = (plan(job), Job.objects.get(pk=job.pk).status, SharedState.objects.get().version)
    make_audit_fail(monkeypatch)
    with pytest.raises(AuditFailed):
        act(job, job.subtasks.get(key="research"))
    after = (plan(job), Job.objects.get(pk=job.pk).status, SharedState.objects.get().version)
    assert after == before
