"""Bulk actions: a selection by the board's filters and a time range, a preview saying what
would be skipped and why, and cancel, retry or re-run of all of it in a few statements with
one audit entry; a bulk retry of a thousand jobs does not hold back work submitted after it."""

import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone

from agents import actions, bulk, enqueue, recovery
from agents.bulk_forms import BulkActionForm, BulkFilterForm
from agents.dispatch import dispatch_ready
from agents.models import (
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    JobTemplate,
    SharedState,
    Subtask,
    SubtaskStatus,
    WaitingFor,
)
from agents.rerun import RerunRefused

from .cast import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages(monkeypatch) -> list[tuple[str, tuple, float | None]]:
    """The Celery messages asked for, to be sent after commit: (task, args, countdown)."""
    kept: list[tuple[str, tuple, float | None]] = []
    monkeypatch.setattr(
        enqueue,
        "_send",
        lambda name, *args, countdown=None: kept.append((name, args, countdown)),
    )
    return kept


def make_jobs(
    n: int,
    status: str = JobStatus.FAILED,
    *,
    planned: bool = True,
    subtasks: tuple[str, ...] = (SubtaskStatus.FAILED,),
    priority: int = 5,
    **fields,
) -> list[int]:
    """`n` jobs in `status`, each with one subtask per entry of `subtasks` (in that status)."""
    jobs = Job.objects.bulk_create(
        Job(
            title=f"Job {i}",
            description="Do the thing well.",
            status=status,
            priority=priority,
            planned_at=timezone.now() if planned else None,
            finished_at=timezone.now() if status in ("completed", "failed", "cancelled") else None,
            error="it broke" if status == JobStatus.FAILED else "",
            **fields,
        )
        for i in range(n)
    )
    SharedState.objects.bulk_create(SharedState(job=job) for job in jobs)
    Subtask.objects.bulk_create(
        Subtask(
            job=job,
            key=f"s{k}",
            type="coding",
            status=sub,
            priority=job.priority,
            error="HTTP 500" if sub == SubtaskStatus.FAILED else "",
            retry_count=3 if sub == SubtaskStatus.FAILED else 0,
        )
        for job in jobs
        for k, sub in enumerate(subtasks)
    )
    return [job.pk for job in jobs]


def statuses(ids) -> dict[str, int]:
    found: dict[str, int] = {}
    for status in Job.objects.filter(pk__in=ids).values_list("status", flat=True):
        found[status] = found.get(status, 0) + 1
    return found


# Selecting and previewing


def test_the_filter_form_takes_the_boards_filters_and_a_time_range_in_order():
    form = BulkFilterForm({"tag": " Nightly ", "status": "failed", "created_after": "2026-12-01"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["tag"] == "nightly"
    backwards = BulkFilterForm(
        {"created_after": "2026-12-02 00:00", "created_before": "2026-12-01 00:00"}
    )
    assert not backwards.is_valid()
    assert backwards.non_field_errors() == [
        "“Created from” must come before “Created before”: no job is in that range."
    ]
    chosen = BulkActionForm({"action": "retry", "status": "failed"})
    assert chosen.is_valid(), chosen.errors
    assert set(chosen.filters()) == {*BulkFilterForm().fields} and "action" not in chosen.filters()
    assert not BulkActionForm({"action": "delete"}).is_valid()


def test_select_applies_the_filters_and_the_range_newest_first():
    old = make_jobs(3, tags="nightly")
    new = make_jobs(3, tags="nightly research")
    other = make_jobs(2, tags="weekly")
    make_jobs(1, JobStatus.COMPLETED, tags="nightly")
    day = timezone.now() - timedelta(days=1)
    Job.objects.filter(pk__in=old).update(created_at=day - timedelta(hours=1))
    Job.objects.filter(pk__in=other).update(created_at=day - timedelta(hours=1))

    form = BulkFilterForm({"tag": "nightly", "status": "failed"})
    assert form.is_valid()
    assert list(bulk.select(**form.cleaned_data).values_list("pk", flat=True)) == [
        *reversed(new),
        *reversed(old),
    ]
    assert list(bulk.select(tag="nightly", status="failed", created_after=day)) == list(
        Job.objects.filter(pk__in=new).order_by("-pk")
    )
    assert set(bulk.select(created_before=day).values_list("pk", flat=True)) == {*old, *other}
    assert bulk.select(q="Job 1", tag="weekly").get().pk == other[1]


@pytest.mark.parametrize(
    ("filters", "count"),
    [
        ({}, 19),
        ({"q": "Job 1"}, 6),  # each group's Job 1, and Job 10 and Job 11 of the twelve
        ({"status": "failed"}, 3),
        ({"priority": 3}, 2),
        ({"submitter": "bob"}, 5),
        ({"tag": "nightly"}, 5),
        ({"tag": "night"}, 0),  # a tag is a whole word
        (
            {
                "q": "job",
                "status": "completed",
                "priority": 5,
                "submitter": "bob",
                "tag": "research",
            },
            2,
        ),
    ],
)
def test_select_filters_as_the_board_does(filters, count):
    bob = person("bob")
    make_jobs(3, tags="nightly research", submitted_by=bob)
    make_jobs(2, JobStatus.COMPLETED, priority=3, tags="research")
    make_jobs(2, JobStatus.COMPLETED, tags="research nightly", submitted_by=bob)
    make_jobs(12, JobStatus.WORKING, tags="nightlyish")
    selected = set(bulk.select(**filters))
    assert selected == set(Job.objects.filtered(**filters))
    assert len(selected) == count


def test_the_preview_counts_what_the_action_applies_to_and_why_it_skips_the_rest(
    django_assert_max_num_queries,
):
    failed = make_jobs(70)
    make_jobs(5, JobStatus.CANCELLED)
    working = make_jobs(4, JobStatus.WORKING, subtasks=(SubtaskStatus.WORKING,))
    make_jobs(3, JobStatus.COMPLETED, subtasks=(SubtaskStatus.COMPLETED,))
    jobs = bulk.select()
    with django_assert_max_num_queries(2):
        shown = bulk.preview(jobs, "retry")
        first = [(job.pk, job.eligible, job.skip_reason) for job in shown.jobs]
    assert (shown.count, shown.eligible, shown.skipped) == (82, 75, 7)
    assert shown.refused == {"not failed or cancelled": 7}
    assert len(first) == bulk.PREVIEW_JOBS
    assert first[0] == (
        max(Job.objects.values_list("pk", flat=True)),
        False,
        "not failed or cancelled",
    )
    assert (working[0], False, "not failed or cancelled") in first

    cancel = bulk.preview(jobs, "cancel")
    assert (cancel.eligible, cancel.refused) == (4, {"already finished": 78})
    rerun = bulk.preview(jobs, "rerun")
    assert (rerun.eligible, rerun.refused) == (78, {"not finished yet": 4})
    assert failed[0] not in {job.pk for job in shown.jobs}  # only the newest 50 are read
    with pytest.raises(ValueError):
        bulk.preview(jobs, "delete")


# Acting


def test_a_bulk_cancel_stops_open_jobs_and_skips_finished_ones_with_one_audit_entry(messages):
    open_ = make_jobs(4, JobStatus.WORKING, subtasks=(SubtaskStatus.WAITING, SubtaskStatus.WORKING))
    queued = make_jobs(2, JobStatus.QUEUED, planned=False, subtasks=())
    done = make_jobs(2, JobStatus.COMPLETED, subtasks=(SubtaskStatus.COMPLETED,))
    bob = person("bob")
    result = actions.bulk_act("cancel", bulk.select(), user=bob)

    assert result.applied == sorted([*open_, *queued])
    assert result.skipped == {pk: "already finished" for pk in done}
    assert statuses([*open_, *queued]) == {"cancelled": 6}
    assert set(Job.objects.filter(pk__in=open_).values_list("error", flat=True)) == {
        "Cancelled by an operator."
    }
    # As cancel_job: waiting work is cancelled, a call in flight finishes.
    subs = Subtask.objects.filter(job_id__in=open_)
    assert set(subs.filter(key="s0").values_list("status", flat=True)) == {"cancelled"}
    assert set(subs.filter(key="s1").values_list("status", flat=True)) == {"working"}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.job) == ("bulk_cancel", bob, None)
    assert entry.detail == (
        f"cancelled 6: #{open_[0]}–#{queued[-1]}; "
        f"skipped 2, already finished: #{done[0]}–#{done[-1]}"
    )


@pytest.mark.parametrize(
    ("action", "status", "said"),
    [
        ("cancel", JobStatus.COMPLETED, "cancelled 0: none; skipped 2, already finished"),
        ("retry", JobStatus.COMPLETED, "retried 0: none; skipped 2, not failed or cancelled"),
        ("rerun", JobStatus.WORKING, "re-ran 0: none; skipped 2, not finished yet"),
    ],
)
def test_nothing_to_act_on_is_said_and_an_empty_selection_does_nothing(
    action, status, said, messages
):
    ids = make_jobs(2, status)
    result = actions.bulk_act(action, bulk.select(), user=None)
    assert result.applied == [] and list(result.skipped) == ids
    assert AuditEntry.objects.get().detail == f"{said}: #{ids[0]}–#{ids[1]}"
    assert messages == []
    nothing = actions.bulk_act(action, bulk.select(tag="none"), user=None)
    assert (nothing.applied, nothing.skipped) == ([], {})
    assert AuditEntry.objects.count() == 1


def test_a_bulk_retry_resumes_each_job_where_it_stopped_as_retry_job_does(messages):
    """Each branch of retry_job, on one job by retry_job and on another by bulk_act: the same
    statuses, fields and messages."""

    def cases() -> dict[str, int]:
        work = make_jobs(1, subtasks=(SubtaskStatus.COMPLETED, SubtaskStatus.FAILED))[0]
        plan = make_jobs(1, JobStatus.CANCELLED, planned=False, subtasks=())[0]
        synth = make_jobs(1, subtasks=(SubtaskStatus.COMPLETED,))[0]
        review = make_jobs(1, JobStatus.CANCELLED, review_plan=True)[0]
        return {"work": work, "plan": plan, "synth": synth, "review": review}

    def state(pk: int) -> tuple:
        job = Job.objects.get(pk=pk)
        subs = sorted(job.subtasks.values_list("key", "status", "retry_count", "error"))
        fields = (job.status, job.error, job.status_reason, job.waiting_for, job.finished_at)
        return (*fields, subs)

    one, many = cases(), cases()
    for pk in one.values():
        assert actions.retry_job(Job.objects.get(pk=pk), user=person("bob"))
    single = sorted(name for name, _, _ in messages)
    messages.clear()
    result = actions.bulk_act("retry", Job.objects.filter(pk__in=many.values()), user=person("bob"))

    assert result.applied == sorted(many.values()) and result.skipped == {}
    for branch in one:
        assert state(many[branch]) == state(one[branch]), branch
    assert statuses(many.values()) == {"working": 1, "queued": 1, "synthesizing": 1, "waiting": 1}
    assert Job.objects.get(pk=many["review"]).waiting_for == WaitingFor.REVIEW
    assert single == sorted(name for name, _, _ in messages)
    assert single == ["dispatch_ready", "plan_job", "synthesize_job"]
    assert AuditEntry.objects.filter(action="retry_job").count() == 4
    assert AuditEntry.objects.filter(action="bulk_retry").count() == 1


def test_a_bulk_retry_skips_what_is_not_failed_or_cancelled():
    failed = make_jobs(2)
    running = make_jobs(1, JobStatus.WORKING, subtasks=(SubtaskStatus.WORKING,))
    result = actions.bulk_act("retry", bulk.select(), user=person("bob"))
    assert result.applied == failed
    assert result.skipped == {running[0]: "not failed or cancelled"}


def test_a_bulk_rerun_submits_each_finished_job_again_marked_as_its_rerun(messages):
    agent = Agent.objects.create(name="Reviewer", slug="reviewer")
    template = JobTemplate.objects.create(name="t", title="T", description="d" * 20)
    done = make_jobs(
        3,
        JobStatus.COMPLETED,
        subtasks=(SubtaskStatus.COMPLETED,),
        priority=2,
        budget_tokens=900,
        review_plan=True,
        tags="nightly research",
        template=template,
        agent_versions={agent.slug: 1},
    )
    running = make_jobs(1, JobStatus.WORKING, subtasks=(SubtaskStatus.WORKING,))
    bob = person("bob")
    result = actions.bulk_act("rerun", bulk.select(), user=bob)

    assert result.applied == done and result.skipped == {running[0]: "not finished yet"}
    made = list(Job.objects.filter(pk__in=result.created).order_by("pk"))
    assert [job.rerun_of_id for job in made] == done
    fields = "title description priority budget_tokens budget_cost review_plan tags".split()
    for original, job in zip(Job.objects.filter(pk__in=done).order_by("pk"), made, strict=True):
        assert [getattr(job, f) for f in fields] == [getattr(original, f) for f in fields]
        assert (job.template, job.agent_versions) == (template, {"reviewer": 1})
        assert (job.status, job.submitted_by, job.rerun_from) == (JobStatus.QUEUED, bob, "")
        assert SharedState.objects.filter(job=job).exists()
    assert statuses(done) == {"completed": 3}  # the originals are left as they were
    assert sorted(args[0] for name, args, _ in messages if name == "plan_job") == result.created
    entry = AuditEntry.objects.get()
    assert entry.detail == (
        f"re-ran 3: #{done[0]}–#{done[-1]}; as new jobs #{made[0].pk}–#{made[-1].pk}; "
        f"skipped 1, not finished yet: #{running[0]}"
    )


def test_rerun_job_makes_one_fresh_job_and_refuses_an_unfinished_one(messages):
    (done,) = make_jobs(1, JobStatus.FAILED, tags="nightly")
    (running,) = make_jobs(1, JobStatus.WORKING)
    job = actions.rerun_job(Job.objects.get(pk=done), user=person("bob"))
    assert (job.rerun_of_id, job.tags, job.title) == (done, "nightly", "Job 0")
    assert AuditEntry.objects.get(job=job).detail == f"Re-run of #{done}"
    with pytest.raises(RerunRefused, match="is working: a whole job is re-run once"):
        actions.rerun_job(Job.objects.get(pk=running), user=person("bob"))


def test_more_than_bulk_max_jobs_is_refused_before_anything_is_done(settings):
    settings.BULK_MAX_JOBS = 3
    ids = make_jobs(4)
    with pytest.raises(actions.TooManyJobs, match="More than 3 jobs are selected"):
        actions.bulk_act("retry", bulk.select(), user=person("bob"))
    assert statuses(ids) == {"failed": 4}
    assert not AuditEntry.objects.exists()
    assert (
        len(actions.bulk_act("retry", Job.objects.filter(pk__in=ids[:3]), user=None).applied) == 3
    )


@pytest.mark.parametrize(
    ("name", "action"), [("carol", "cancel"), ("dave", "retry"), ("eve", "rerun")]
)
def test_only_operators_act_in_bulk(name, action):
    ids = make_jobs(2)
    with pytest.raises(PermissionDenied):
        actions.bulk_act(action, bulk.select(), user=person(name))
    assert statuses(ids) == {"failed": 2}


def test_the_audit_entry_lists_every_job_however_scattered(messages):
    ids = make_jobs(1000)
    every_other = ids[::2]
    result = actions.bulk_act("retry", Job.objects.filter(pk__in=every_other), user=None)
    assert len(result.applied) == 500
    detail = AuditEntry.objects.get(action="bulk_retry").detail
    listed = {int(part.strip("#")) for part in detail.partition(": ")[2].split(", ")}
    assert listed == set(every_other)


# A thousand at once


@pytest.fixture
def coder() -> Agent:
    return Agent.objects.create(
        name="Coder", slug="coder", specialties=["coding"], max_concurrency=60
    )


def submit_new_work(priority: int = 5) -> Subtask:
    """A job planned after the bulk retry, its one subtask ready to run."""
    job = Job.objects.create(
        title="Fresh", description="New work.", priority=priority, status=JobStatus.WORKING,
        planned_at=timezone.now(),
    )  # fmt: skip
    return Subtask.objects.create(job=job, key="s0", type="coding", priority=priority)


def test_a_bulk_retry_of_a_thousand_keeps_their_priority_and_does_not_hold_back_new_work(
    coder, messages
):
    ids = make_jobs(500, priority=5) + make_jobs(500, priority=3)
    make_jobs(1, priority=5)  # not selected
    result = actions.bulk_act("retry", Job.objects.filter(pk__in=ids), user=person("bob"))
    assert len(result.applied) == 1000
    # At the priority they had.
    assert dict(Job.objects.filter(pk__in=ids).values_list("pk", "priority")) == {
        pk: 5 if i < 500 else 3 for i, pk in enumerate(ids)
    }
    reopened = Subtask.objects.filter(job_id__in=ids, status=SubtaskStatus.WAITING)
    assert reopened.count() == 1000
    assert set(reopened.values_list("priority", flat=True)) == {3, 5}

    fresh = submit_new_work(priority=5)
    assigned = dispatch_ready()
    # The first batch of 50 and the new job's subtask; 1000 retried ones would fill the
    # coder's 60 slots before a later job of the same priority if all were released at once.
    assert assigned == bulk.RELEASE_BATCH + 1
    fresh.refresh_from_db()
    assert fresh.status == SubtaskStatus.QUEUED
    # The rest come in batches, each with a dispatch when it is due.
    releases = reopened.order_by().values_list("next_attempt_at", flat=True).distinct()
    assert len(releases) == 1000 // bulk.RELEASE_BATCH - 1
    countdowns = sorted(c for name, _, c in messages if name == "dispatch_ready" and c)
    assert countdowns == [bulk.RELEASE_SPACING_S * k for k in range(1, 20)]


def test_without_batches_the_same_new_work_would_wait_behind_all_of_them(
    coder, messages, monkeypatch
):
    # The control of the test above: it can fail.
    monkeypatch.setattr(bulk, "RELEASE_BATCH", 10_000)
    ids = make_jobs(1000)
    actions.bulk_act("retry", Job.objects.filter(pk__in=ids), user=None)
    fresh = submit_new_work()
    assert dispatch_ready() == 60
    fresh.refresh_from_db()
    assert fresh.status == SubtaskStatus.WAITING


def test_a_thousand_job_retry_and_cancel_take_a_few_statements(
    messages, django_assert_max_num_queries, capsys
):
    ids = make_jobs(1000, subtasks=(SubtaskStatus.COMPLETED, SubtaskStatus.FAILED))
    jobs = Job.objects.filter(pk__in=ids)
    started = time.perf_counter()
    with django_assert_max_num_queries(60):
        retried = actions.bulk_act("retry", jobs, user=None)
    retry_s = time.perf_counter() - started
    started = time.perf_counter()
    with django_assert_max_num_queries(10):
        cancelled = actions.bulk_act("cancel", jobs, user=None)
    cancel_s = time.perf_counter() - started
    assert len(retried.applied) == len(cancelled.applied) == 1000
    assert statuses(ids) == {"cancelled": 1000}
    with capsys.disabled():
        print(f"\n1,000-job bulk retry {retry_s:.2f} s, cancel {cancel_s:.2f} s")


@pytest.mark.parametrize("action", ["retry", "rerun"])
def test_planning_is_paced_too_and_the_reconciler_waits_for_each_batch(action, settings, messages):
    status = JobStatus.CANCELLED if action == "retry" else JobStatus.COMPLETED
    ids = make_jobs(120, status, planned=False, subtasks=())
    result = actions.bulk_act(action, Job.objects.filter(pk__in=ids), user=None)
    planned = result.created or result.applied
    countdowns = [c for name, _, c in messages if name == "plan_job"]
    assert countdowns == [None] * 50 + [5.0] * 50 + [10.0] * 20

    # 4 s on, with a lease of 3 s: the first batch's messages may have been lost, and are
    # sent again; the later batches are not due yet, so they are left to their messages.
    settings.LEASE_S = 3
    Job.objects.filter(pk__in=planned).update(updated_at=F("updated_at") - timedelta(seconds=4))
    messages.clear()
    assert recovery.reconcile()["plans"] == 50
    assert sorted(args[0] for name, args, _ in messages if name == "plan_job") == planned[:50]
