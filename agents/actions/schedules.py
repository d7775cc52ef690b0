"""Schedules: each write checked, changed, audited in one transaction.

`fields` are a validated ScheduleForm's cleaned_data (agents.schedule_forms), from whichever
face; `user=None` is the system acting. The next run is computed from now on create, on an
edit of its timing and on resume: a paused schedule does not make up what it missed.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import crontimes
from ..audit import audit
from ..models import Schedule
from .checks import require

TIMING = ("cron", "interval_s", "timezone")


class ScheduleNameTaken(ValueError):
    """Another schedule took the name meanwhile (the form checked it was free)."""


def first_run(schedule: Schedule, now: datetime | None = None) -> datetime | None:
    """The schedule's first due time after `now`, counted from now (an interval's anchor)."""
    runs = crontimes.runs_after(
        schedule.cron or None, schedule.interval_s, schedule.timezone, now or timezone.now(), 1
    )
    return runs[0] if runs else None


def _timing(schedule: Schedule) -> str:
    return f"{crontimes.describe(schedule.cron or None, schedule.interval_s)} ({schedule.timezone})"


def create_schedule(fields: dict, *, user=None) -> Schedule:
    require(user, "add_schedule")
    schedule = Schedule(**fields, created_by=user if user is not None and user.pk else None)
    schedule.next_run_at = first_run(schedule)
    try:
        with transaction.atomic():
            schedule.save()
            audit(
                "create_schedule",
                actor=user,
                detail=f"{schedule.name}: template {schedule.template.name}, {_timing(schedule)}"
                + ("" if schedule.enabled else ", paused"),
            )
    except IntegrityError:
        raise ScheduleNameTaken(f"A schedule named {fields['name']} exists.") from None
    return schedule


def edit_schedule(schedule: Schedule, fields: dict, *, user=None) -> list[str]:
    """Save what changed; the names of the fields changed (none: nothing is written)."""
    require(user, "change_schedule")
    try:
        with transaction.atomic():
            locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
            was_enabled = locked.enabled
            changed = [name for name, value in fields.items() if getattr(locked, name) != value]
            if not changed:
                return []
            before = _timing(locked)
            for name in changed:
                setattr(locked, name, fields[name])
            saved = [*changed, "updated_at"]
            retimed = any(name in TIMING for name in changed)
            if retimed or (locked.enabled and not was_enabled):
                locked.next_run_at = first_run(locked)
                saved.append("next_run_at")
            locked.save(update_fields=saved)
            detail = f"{locked.name}: {', '.join(changed)}"
            if retimed:
                detail += f" ({before} -> {_timing(locked)})"
            audit("edit_schedule", actor=user, detail=detail)
    except IntegrityError:
        raise ScheduleNameTaken(f"A schedule named {fields.get('name')} exists.") from None
    schedule.refresh_from_db()
    return changed


def set_schedule_enabled(schedule: Schedule, enabled: bool, *, user=None) -> bool:
    """Pause or resume; whether anything changed. A resumed schedule runs from now on."""
    require(user, "change_schedule")
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
        if locked.enabled == enabled:
            return False
        locked.enabled = enabled
        saved = ["enabled", "updated_at"]
        if enabled:
            locked.next_run_at = first_run(locked)
            saved.append("next_run_at")
        locked.save(update_fields=saved)
        action = "resume_schedule" if enabled else "pause_schedule"
        detail = locked.name
        if enabled and locked.next_run_at:
            detail += f": next run {locked.next_run_at:%Y-%m-%d %H:%M:%S} UTC"
        audit(action, actor=user, detail=detail)
    schedule.enabled, schedule.next_run_at = locked.enabled, locked.next_run_at
    return True


def delete_schedule(schedule: Schedule, *, user=None) -> None:
    """Delete it and its runs' records; the jobs it made stay."""
    require(user, "delete_schedule")
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
        runs = locked.runs.count()
        audit("delete_schedule", actor=user, detail=f"{locked.name} ({runs} runs recorded)")
        locked.delete()
