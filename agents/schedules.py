"""Running schedules: every worker's loop claims due times; exactly one job per due time.

A schedule's `next_run_at` is the claim. A worker takes a due time by moving it on to the
following one with a conditional UPDATE (WHERE next_run_at = the due time it read), in the
transaction that records the run and creates its job: of workers racing, one updates the row
and the others update nothing. A worker killed mid-way rolls its transaction back, so the due
time is still there for another; the unique (schedule, due_at) of ScheduleRun is a second
guard. The job's plan is enqueued when that transaction commits (submit_job does so), so no
message names a row that is not there. No process has to be up but some worker.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from . import actions, crontimes, process, threads
from .models import JOB_TERMINAL, MissedRuns, Overlap, RunOutcome, Schedule, ScheduleRun

log = logging.getLogger(__name__)

BATCH = 50  # due schedules taken per pass; the rest at the next pass, at once
MISSED_SCAN = 5000  # due times counted one by one when many were missed; beyond, "more than"
NOTE_CHARS = 300  # ScheduleRun.note's max_length
NEXT_RUNS_MAX = 100


def next_runs(schedule: Schedule, count: int = 5) -> list[datetime]:
    """The next `count` due times, as the loop will take them: from next_run_at on, or for a
    paused schedule those it would have if resumed now."""
    count = max(0, min(count, NEXT_RUNS_MAX))
    if not count:
        return []
    cron, interval, zone = schedule.cron or None, schedule.interval_s, schedule.timezone
    first = schedule.next_run_at
    if not schedule.enabled or first is None:
        return crontimes.runs_after(cron, interval, zone, timezone.now(), count)
    return [first, *crontimes.runs_after(cron, interval, zone, first, count - 1, anchor=first)]


def run_due(now: datetime | None = None) -> int:
    """Claim and run what is due by `now` (at most BATCH schedules, one due time each);
    how many due times this call took. Any worker may call it at any time."""
    return _pass(now or timezone.now())[0]


def _pass(now: datetime, lookahead: float = 0.0) -> tuple[int, datetime | None]:
    """One pass: (due times taken, the soonest due time within `lookahead` seconds not yet
    due). One indexed query when nothing is due."""
    soon = Schedule.objects.filter(
        enabled=True, next_run_at__lte=now + timedelta(seconds=lookahead)
    ).order_by("next_run_at")
    rows = list(soon.values_list("pk", "next_run_at")[: BATCH + 1])
    upcoming = next((at for _, at in rows if at > now), None)
    taken = 0
    for pk, due_at in rows[:BATCH]:
        if due_at > now:
            break
        try:
            taken += _take(pk, due_at, now)
        except Exception:  # this schedule's turn is rolled back: tried again at the next pass
            log.exception("schedule %s: the run due at %s failed", pk, due_at)
    return taken, upcoming


def _take(pk: int, due_at: datetime, now: datetime) -> int:
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_related("template", "created_by")
            .filter(pk=pk, enabled=True, next_run_at=due_at)
            .first()
        )
        if schedule is None:  # taken, paused or edited since it was read
            return 0
        missed_after = timedelta(seconds=settings.SCHEDULE_MISSED_AFTER_S)
        missed = now - due_at > missed_after
        try:
            if missed:
                how_many, due = _due_until(schedule, due_at, now)
                following = _following(schedule, now, due_at)
            else:
                how_many, due = "", due_at
                following = _following(schedule, due_at, due_at)
        except Exception as error:  # a zone or expression saved past the form's checks
            return _stop_untimable(schedule, due_at, error)
        # The claim. Racing workers all read due_at; the first UPDATE to commit moves it, and
        # the others' (waiting on its row lock, then reading the new value) match no row.
        claimed = Schedule.objects.filter(pk=pk, enabled=True, next_run_at=due_at).update(
            next_run_at=following, last_run_at=due
        )
        if not claimed:
            return 0
        _run(schedule, due, how_many, due_at)
    return 1


def _stop_untimable(schedule: Schedule, due_at: datetime, error: Exception) -> int:
    """Record a failed run and leave the schedule without a next run (until an edit gives it
    timing that works), rather than fail at every pass."""
    log.warning("schedule %s: its next run cannot be computed: %s", schedule.pk, error)
    claimed = Schedule.objects.filter(pk=schedule.pk, enabled=True, next_run_at=due_at).update(
        next_run_at=None
    )
    if claimed:
        ScheduleRun.objects.get_or_create(
            schedule=schedule,
            due_at=due_at,
            defaults={
                "outcome": RunOutcome.FAILED,
                "note": f"Claimed by {process.me()}. Its timing cannot be computed "
                f"({type(error).__name__}: {error}); edit it to run again."[:NOTE_CHARS],
            },
        )
    return claimed


def _following(schedule: Schedule, after: datetime, anchor: datetime) -> datetime | None:
    runs = crontimes.runs_after(
        schedule.cron or None, schedule.interval_s, schedule.timezone, after, 1, anchor=anchor
    )
    return runs[0] if runs else None


def _due_until(schedule: Schedule, first: datetime, now: datetime) -> tuple[str, datetime]:
    """How many due times from `first` to `now` (inclusive), in words, and the latest."""
    if schedule.interval_s:
        step = timedelta(seconds=schedule.interval_s)
        count = (now - first) // step + 1
        return str(count), first + (count - 1) * step
    count, latest = 1, first
    while count < MISSED_SCAN:
        chunk = crontimes.runs_after(schedule.cron, None, schedule.timezone, latest, 100)
        inside = [at for at in chunk if at <= now]
        if inside:
            count, latest = count + len(inside), inside[-1]
        if len(inside) < len(chunk) or not chunk:
            return str(count), latest
    # Very many: the latest is found walking back from now (cronsim's reverse, in the zone).
    # (cronsim's reverse includes its start only when it has microseconds to strip)
    start = now if now.microsecond else now + timedelta(microseconds=1)
    back = CronSim(schedule.cron, start.astimezone(ZoneInfo(schedule.timezone)), True)
    at = next(back, None)
    if at is not None and at.astimezone(latest.tzinfo) > latest:
        latest = at.astimezone(latest.tzinfo)
    return f"more than {MISSED_SCAN}", latest


def _run(schedule: Schedule, due: datetime, missed: str, first_missed: datetime) -> None:
    """Record the run of `due` and start its job as the schedule's policies say. `missed`:
    how many due times were missed, in words ("" when none)."""
    notes = [f"Claimed by {process.me()}."]
    if missed:
        notes.append(f"{missed} due time(s) from {first_missed:%Y-%m-%d %H:%M:%S} UTC missed.")
    try:
        with transaction.atomic():
            run = ScheduleRun.objects.create(
                schedule=schedule, due_at=due, outcome=RunOutcome.STARTED
            )
    except IntegrityError:  # recorded already (a due time given back by an edit): once only
        log.warning("schedule %s: a run due at %s is recorded already", schedule.pk, due)
        return
    run.outcome = _start(schedule, run, missed, notes)
    run.note = " ".join(notes)[:NOTE_CHARS]
    run.save(update_fields=["outcome", "job", "note"])


def _start(schedule: Schedule, run: ScheduleRun, missed: str, notes: list[str]) -> str:
    if missed and schedule.on_missed == MissedRuns.SKIP:
        notes.append("Skipped.")
        return RunOutcome.SKIPPED_MISSED
    previous = (
        ScheduleRun.objects.filter(schedule=schedule, due_at__lt=run.due_at, job__isnull=False)
        .select_related("job")
        .order_by("-due_at")
        .first()
    )
    if previous is not None and previous.job.status not in JOB_TERMINAL:
        going = f"job #{previous.job_id} (due {previous.due_at:%Y-%m-%d %H:%M:%S} UTC)"
        if schedule.on_overlap == Overlap.SKIP:
            notes.append(f"Skipped: {going} was still {previous.job.status}.")
            return RunOutcome.SKIPPED_OVERLAP
        if schedule.on_overlap == Overlap.CANCEL_PREVIOUS:
            cancelled = actions.cancel_job(previous.job, user=None)
            notes.append(f"Cancelled {going}." if cancelled else f"{going} had ended meanwhile.")
        else:
            notes.append(f"{going} was still {previous.job.status}: run anyway.")
    try:
        with transaction.atomic():  # a failed submit leaves no half-made job
            run.job = actions.submit_template(
                schedule.template,
                user=schedule.created_by,
                at=run.due_at,
                tz_name=schedule.timezone,
                check_limit=False,
            )
    except Exception as error:  # recorded, not retried: the next due time tries afresh
        log.warning("schedule %s: could not start its run: %s", schedule.pk, error)
        message = "; ".join(getattr(error, "messages", None) or [str(error)])
        notes.append(f"Could not start: {message or type(error).__name__}")
        return RunOutcome.FAILED
    return RunOutcome.STARTED


def _schedule_forever() -> None:
    try:
        while not _stop.is_set():
            _stop.wait(_tick())
    finally:
        connection.close()  # stopped: hold no connection open


def _tick() -> float:
    """One pass of the loop; how long to wait before the next."""
    tick = settings.SCHEDULE_TICK_S
    try:
        now = timezone.now()
        taken, upcoming = _pass(now, lookahead=tick)
        if taken:
            return 0  # the following due times may be due already (catching up)
        if upcoming is not None:  # wake for it rather than up to a tick late
            return min(tick, max(0.0, (upcoming - now).total_seconds()) + 0.001)
    except Exception:
        log.exception("schedule pass failed")
    finally:
        close_old_connections()
    return tick


_stop = threading.Event()
scheduler = threads.register("baton-schedules", __name__, _schedule_forever, _stop)
