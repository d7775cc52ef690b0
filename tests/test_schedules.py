"""Schedules: the form, the actions (audited), and run_due: one run per due time however many
callers race, the policies for missed and overlapping runs, pause and resume, and a template
that cannot run recorded as a failed run instead of a crash."""

from __future__ import annotations

import threading
from datetime import timedelta
from itertools import pairwise

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from agents import actions, schedules
from agents.models import (
    AuditEntry,
    Job,
    JobStatus,
    JobTemplate,
    MissedRuns,
    Overlap,
    RunOutcome,
    Schedule,
    ScheduleRun,
)
from agents.schedule_forms import ScheduleForm

from .cast import person
from .stack import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob():
    return person("bob")


@pytest.fixture
def template(bob) -> JobTemplate:
    return JobTemplate.objects.create(
        name="digest",
        title="Digest for {date}",
        description="Summarise the day.",
        priority=3,
        tags="nightly research",
        created_by=bob,
    )


def make(template, user, **fields) -> Schedule:
    row = {
        "name": "nightly",
        "template": template,
        "cron": "",
        "interval_s": 60,
        "timezone": "UTC",
        "enabled": True,
        "on_missed": MissedRuns.RUN_ONCE,
        "on_overlap": Overlap.RUN,
        **fields,
    }
    return actions.create_schedule(row, user=user)


def due_now(schedule: Schedule, ago_s: float = 0.0):
    """Make the schedule due `ago_s` seconds ago; the moment it is due."""
    at = timezone.now() - timedelta(seconds=ago_s)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at)
    return at


# --- the form ---------------------------------------------------------------------------


def form(template, **data) -> ScheduleForm:
    base = {
        "name": "weekday mornings",
        "template": template.pk,
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
        "enabled": "on",
        "on_missed": "run_once",
        "on_overlap": "skip",
    }
    return ScheduleForm(data={**base, **data})


def test_the_form_takes_a_cron_expression_or_an_interval(template):
    f = form(template, cron="  0  9 * * 1-5 ")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["cron"] == "0 9 * * 1-5" and f.cleaned_data["interval_s"] is None
    f = form(template, cron="", interval_s="90")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["interval_s"] == 90


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"cron": "0 9 * * *", "interval_s": "60"}, "cron", "not both"),
        ({"cron": ""}, "cron", "cron expression or an interval"),
        ({"cron": "0 25 * * *"}, "cron", "Bad hour"),
        ({"cron": "0 9 * *"}, "cron", "five fields"),
        ({"timezone": "Europe/Atlantis"}, "timezone", "Unknown time zone"),
        ({"cron": "", "interval_s": "0"}, "interval_s", "greater than or equal to 1"),
        ({"cron": "", "interval_s": str(10**9)}, "interval_s", "less than or equal to"),
        ({"name": "x" * 101}, "name", "at most 100"),
    ],
)
def test_the_form_refuses_clearly(template, data, field, message):
    f = form(template, **data)
    assert not f.is_valid()
    assert message in " ".join(f.errors[field]), f.errors


def test_the_form_defaults_the_zone(template, settings):
    settings.TIME_ZONE = "UTC"
    f = form(template, timezone="")
    assert f.is_valid(), f.errors
    assert f.cleaned_data["timezone"] == "UTC"
    assert ScheduleForm().initial["timezone"] == "UTC"


# --- the actions ---------------------------------------------------------------------------


def test_creating_computes_the_first_run_and_is_audited(template, bob):
    before = timezone.now()
    s = make(template, bob, name="every minute")
    assert s.created_by == bob
    assert before + timedelta(seconds=60) <= s.next_run_at <= timezone.now() + timedelta(60)
    daily = make(template, bob, name="daily", cron="0 9 * * *", interval_s=None,
                 timezone="Europe/Berlin")  # fmt: skip
    local = daily.next_run_at.astimezone(timezone.get_default_timezone())
    assert daily.next_run_at > before
    assert local.minute == 0
    entry = AuditEntry.objects.filter(action="create_schedule").order_by("pk").last()
    assert entry.actor == bob
    assert entry.detail == "daily: template digest, At 09:00 every day (Europe/Berlin)"


def test_only_those_allowed_manage_schedules(template):
    carol = person("carol")  # a viewer
    with pytest.raises(PermissionDenied):
        make(template, carol)
    s = make(template, None)  # the system
    for act in (
        lambda: actions.edit_schedule(s, {"name": "x"}, user=carol),
        lambda: actions.set_schedule_enabled(s, False, user=carol),
        lambda: actions.delete_schedule(s, user=carol),
    ):
        with pytest.raises(PermissionDenied):
            act()


def test_editing_the_timing_moves_the_next_run(template, bob):
    s = make(template, bob)
    first = s.next_run_at
    assert actions.edit_schedule(s, {"name": "renamed", "interval_s": 60}, user=bob) == ["name"]
    s.refresh_from_db()
    assert s.next_run_at == first  # a rename keeps it
    changed = actions.edit_schedule(s, {"interval_s": None, "cron": "30 2 * * *"}, user=bob)
    assert changed == ["interval_s", "cron"]
    assert (s.next_run_at.hour, s.next_run_at.minute) == (2, 30)
    entry = AuditEntry.objects.filter(action="edit_schedule").order_by("pk").last()
    assert entry.detail == (
        "renamed: interval_s, cron (Every minute (UTC) -> At 02:30 every day (UTC))"
    )
    assert actions.edit_schedule(s, {"cron": "30 2 * * *"}, user=bob) == []


def test_deleting_keeps_the_jobs_and_is_audited(template, bob, no_broker):
    s = make(template, bob)
    due_now(s)
    assert schedules.run_due() == 1
    job = Job.objects.get()
    actions.delete_schedule(s, user=bob)
    assert not Schedule.objects.exists() and not ScheduleRun.objects.exists()
    assert Job.objects.get() == job
    entry = AuditEntry.objects.get(action="delete_schedule")
    assert entry.detail == "nightly (1 runs recorded)"


# --- running -------------------------------------------------------------------------------


def test_a_due_schedule_submits_its_template_once(template, bob, no_broker):
    s = make(template, bob)
    due = due_now(s, ago_s=1)
    assert schedules.run_due() == 1
    run = ScheduleRun.objects.get()
    assert run.due_at == due and run.outcome == RunOutcome.STARTED
    assert run.note.startswith("Claimed by ")
    job = run.job
    assert job.template == template and job.submitted_by == bob
    assert job.title == f"Digest for {due:%Y-%m-%d}" and job.priority == 3
    assert job.tag_list == ["nightly", "research"]
    s.refresh_from_db()
    assert s.next_run_at == due + timedelta(seconds=60) and s.last_run_at == due
    assert schedules.run_due() == 0  # the next is a minute away
    assert ScheduleRun.objects.count() == 1 and Job.objects.count() == 1


def test_nothing_due_nothing_made(template, bob, django_assert_num_queries):
    make(template, bob)
    with django_assert_num_queries(1):
        assert schedules.run_due() == 0
    assert not ScheduleRun.objects.exists()


def test_a_run_late_but_not_missed_runs_each_due_time(template, bob, no_broker, settings):
    settings.SCHEDULE_MISSED_AFTER_S = 60
    s = make(template, bob, interval_s=10)
    first = due_now(s, ago_s=35)
    now = timezone.now()
    while schedules.run_due(now):
        pass
    dues = list(ScheduleRun.objects.order_by("due_at").values_list("due_at", flat=True))
    assert dues == [first + timedelta(seconds=10 * k) for k in range(4)]
    assert Job.objects.count() == 4


def test_missed_runs_run_once(template, bob, no_broker, settings):
    settings.SCHEDULE_MISSED_AFTER_S = 60
    s = make(template, bob, interval_s=60, on_missed=MissedRuns.RUN_ONCE)
    first = due_now(s, ago_s=10 * 60 + 30)  # 11 due times passed while nothing ran
    now = timezone.now()
    assert schedules.run_due(now) == 1
    run = ScheduleRun.objects.get()
    assert run.due_at == first + timedelta(minutes=10)  # the latest of them
    assert run.outcome == RunOutcome.STARTED and run.job is not None
    assert "11 due time(s)" in run.note and "missed" in run.note
    s.refresh_from_db()
    assert now < s.next_run_at == first + timedelta(minutes=11)
    assert schedules.run_due(now) == 0


def test_missed_runs_skipped(template, bob, no_broker, settings):
    settings.SCHEDULE_MISSED_AFTER_S = 60
    s = make(template, bob, cron="*/5 * * * *", interval_s=None, on_missed=MissedRuns.SKIP)
    now = timezone.now()
    first = now.replace(second=0, microsecond=0) - timedelta(hours=1, minutes=now.minute % 5)
    Schedule.objects.filter(pk=s.pk).update(next_run_at=first)
    assert schedules.run_due(now) == 1
    run = ScheduleRun.objects.get()
    assert run.outcome == RunOutcome.SKIPPED_MISSED and run.job is None
    assert run.due_at == first + timedelta(hours=1)
    assert "13 due time(s)" in run.note and "Skipped" in run.note
    assert not Job.objects.exists()
    s.refresh_from_db()
    assert s.next_run_at == first + timedelta(minutes=65) > now


def overlapping(template, bob, policy):
    s = make(template, bob, on_overlap=policy, interval_s=30)
    due_now(s, ago_s=31)
    now = timezone.now()
    assert schedules.run_due(now) == 1  # the first run's job is queued: still going
    assert schedules.run_due(now) == 1  # the second is due too
    first, second = ScheduleRun.objects.order_by("due_at")
    return first, second


def test_overlap_skip(template, bob, no_broker):
    first, second = overlapping(template, bob, Overlap.SKIP)
    assert second.outcome == RunOutcome.SKIPPED_OVERLAP and second.job is None
    assert f"job #{first.job_id}" in second.note and "still queued" in second.note
    assert Job.objects.count() == 1


def test_overlap_run_anyway(template, bob, no_broker):
    first, second = overlapping(template, bob, Overlap.RUN)
    assert second.outcome == RunOutcome.STARTED and second.job is not None
    assert f"job #{first.job_id}" in second.note and "run anyway" in second.note
    first.job.refresh_from_db()
    assert first.job.status == JobStatus.QUEUED


def test_overlap_cancel_previous(template, bob, no_broker):
    first, second = overlapping(template, bob, Overlap.CANCEL_PREVIOUS)
    first.job.refresh_from_db()
    assert first.job.status == JobStatus.CANCELLED
    assert second.outcome == RunOutcome.STARTED and second.job.status == JobStatus.QUEUED
    assert f"Cancelled job #{first.job_id}" in second.note


def test_no_overlap_once_the_previous_ended(template, bob, no_broker):
    s = make(template, bob, on_overlap=Overlap.SKIP, interval_s=30)
    due_now(s, ago_s=31)
    now = timezone.now()
    schedules.run_due(now)
    Job.objects.update(status=JobStatus.COMPLETED)
    schedules.run_due(now)
    assert [r.outcome for r in ScheduleRun.objects.order_by("due_at")] == ["started"] * 2


def test_a_paused_schedule_does_not_run_nor_make_up_what_it_missed(template, bob, no_broker):
    s = make(template, bob)
    due_now(s, ago_s=5)
    assert actions.set_schedule_enabled(s, False, user=bob) is True
    assert actions.set_schedule_enabled(s, False, user=bob) is False
    assert schedules.run_due() == 0
    assert not ScheduleRun.objects.exists()
    before = timezone.now()
    assert actions.set_schedule_enabled(s, True, user=bob) is True
    s.refresh_from_db()
    assert s.enabled and s.next_run_at >= before + timedelta(seconds=60)
    assert schedules.run_due() == 0
    actions_seen = list(
        AuditEntry.objects.filter(action__endswith="_schedule")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions_seen == ["create_schedule", "pause_schedule", "resume_schedule"]
    assert "next run" in AuditEntry.objects.get(action="resume_schedule").detail


def test_a_template_that_cannot_run_gives_a_failed_run_not_a_crash(template, bob, no_broker):
    template.agent_versions = {"researcher": 99}  # a pinned version that does not exist
    template.save()
    s = make(template, bob, interval_s=5)
    due = due_now(s, ago_s=1)
    assert schedules.run_due() == 1
    run = ScheduleRun.objects.get()
    assert run.outcome == RunOutcome.FAILED and run.job is None
    assert "Could not start" in run.note and "researcher" in run.note
    assert not Job.objects.exists()
    s.refresh_from_db()
    assert s.next_run_at == due + timedelta(seconds=5)  # moved on: not tried forever


def test_an_owner_who_lost_the_right_to_submit_gives_a_failed_run(template, no_broker):
    eve = person("eve")  # in no group
    s = make(template, None)
    Schedule.objects.filter(pk=s.pk).update(created_by=eve)
    due_now(s)
    assert schedules.run_due() == 1
    run = ScheduleRun.objects.get()
    assert run.outcome == RunOutcome.FAILED and "add job" in run.note


def test_next_runs(template, bob):
    s = make(template, bob, interval_s=3600)
    runs = schedules.next_runs(s, 3)
    assert runs == [s.next_run_at + timedelta(hours=k) for k in range(3)]
    daily = make(template, bob, name="d", cron="0 9 * * *", interval_s=None, timezone="Asia/Tokyo")
    runs = schedules.next_runs(daily)
    assert len(runs) == 5 and runs[0] == daily.next_run_at
    assert all(later - earlier == timedelta(days=1) for earlier, later in pairwise(runs))
    assert all(r.hour == 0 for r in runs)  # 09:00 in Tokyo
    actions.set_schedule_enabled(s, False, user=bob)
    s.refresh_from_db()
    now = timezone.now()
    paused = schedules.next_runs(s, 2)
    assert now + timedelta(hours=1) <= paused[0] <= timezone.now() + timedelta(hours=1)
    assert schedules.next_runs(s, 10**6)[:1] and len(schedules.next_runs(s, 10**6)) == 100


# --- racing ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_callers_racing_make_one_run_per_due_time(template, bob, no_broker):
    s = make(template, bob, interval_s=1)
    first = due_now(s, ago_s=7.5)  # eight due times, none missed
    now = timezone.now()
    start = threading.Barrier(3)
    taken: list[int] = []
    errors: list[BaseException] = []

    def race() -> None:
        try:
            start.wait(timeout=10)
            while n := schedules.run_due(now):
                taken.append(n)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connection.close()  # each thread's own connection

    racers = [threading.Thread(target=race) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert not errors
    dues = list(ScheduleRun.objects.order_by("due_at").values_list("due_at", flat=True))
    assert dues == [first + timedelta(seconds=k) for k in range(8)]
    assert sum(taken) == 8
    assert Job.objects.filter(schedule_run__isnull=False).count() == Job.objects.count() == 8


def test_timing_saved_past_the_form_stops_the_schedule_once(template, bob, no_broker):
    s = make(template, bob)
    due = due_now(s)
    Schedule.objects.filter(pk=s.pk).update(timezone="Mars/Olympus_Mons", cron="0 9 * * *",
                                            interval_s=None)  # fmt: skip
    assert schedules.run_due() == 1
    run = ScheduleRun.objects.get()
    assert run.due_at == due and run.outcome == RunOutcome.FAILED
    assert "timing cannot be computed" in run.note and "Mars" in run.note
    s.refresh_from_db()
    assert s.next_run_at is None and s.enabled
    assert schedules.run_due() == 0
    assert not Job.objects.exists()


def test_very_many_missed_cron_runs_run_once_at_the_latest(template, bob, no_broker, settings):
    settings.SCHEDULE_MISSED_AFTER_S = 60
    s = make(template, bob, cron="* * * * *", interval_s=None)
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    Schedule.objects.filter(pk=s.pk).update(next_run_at=minute - timedelta(days=5))
    assert schedules.run_due(now) == 1
    run = ScheduleRun.objects.get()
    assert run.due_at == minute and run.job is not None
    assert "more than 5000 due time(s)" in run.note
    s.refresh_from_db()
    assert s.next_run_at == minute + timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_the_loop_runs_due_schedules_until_stopped(template, bob, no_broker, settings):
    settings.SCHEDULE_TICK_S = 0.1
    s = make(template, bob, interval_s=1)
    first = s.next_run_at
    assert schedules.scheduler.start() is True
    try:
        wait_until(
            lambda: ScheduleRun.objects.filter(due_at=first + timedelta(seconds=1)).exists(),
            "two runs of the loop",
            timeout=30,
        )
    finally:
        assert schedules.scheduler.stop(timeout=10) is True
    assert set(ScheduleRun.objects.values_list("outcome", flat=True)) == {RunOutcome.STARTED}
    assert ScheduleRun.objects.filter(due_at=first).exists()
