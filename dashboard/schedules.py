"""Schedule pages: list, create, edit, a schedule's next runs and past runs, pause, resume and
delete.

Reads need the recurring pages' permissions; writes add_/change_/delete_schedule, each through
an action of agents.actions.schedules.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from agents import crontimes
from agents.actions import schedules as schedule_actions
from agents.models import JobTemplate, Schedule, ScheduleRun
from agents.schedule_forms import ScheduleForm
from agents.schedules import next_runs

from .access import read_required

NEXT_RUNS = 5
RECENT_RUNS = 20
POLL_S = 5  # the runs section reads itself again this often
# The policies' labels on the page (the form's are the model fields' names).
LABELS = {
    "on_missed": "When runs were missed (no worker running)",
    "on_overlap": "When the previous run is still going",
}


def _with_when(schedules: list[Schedule]) -> list[Schedule]:
    for schedule in schedules:
        schedule.when = crontimes.describe(schedule.cron or None, schedule.interval_s)
    return schedules


@read_required("recurring")
def schedule_list(request: HttpRequest) -> HttpResponse:
    rows = _with_when(
        list(Schedule.objects.select_related("template").defer("template__description"))
    )
    return render(request, "dashboard/schedules.html", {"schedules": rows})


@read_required("recurring")
def schedule_detail(request: HttpRequest, schedule_id: int) -> HttpResponse:
    rows = Schedule.objects.select_related("template")
    schedule = _with_when([get_object_or_404(rows, pk=schedule_id)])[0]
    runs = (
        ScheduleRun.objects.filter(schedule=schedule)
        .select_related("job")
        .only("due_at", "outcome", "note", "created_at", "job__title", "job__status")
    )[:RECENT_RUNS]
    context = {
        "schedule": schedule,
        "next_runs": next_runs(schedule, count=NEXT_RUNS),
        "runs": runs,
        "poll_s": POLL_S,
    }
    return render(request, "dashboard/schedule_detail.html", context)


def _edit_page(request: HttpRequest, form: ScheduleForm, schedule: Schedule | None) -> HttpResponse:
    for name, label in LABELS.items():
        if name in form.fields:
            form.fields[name].label = label
    zone = form.fields.get("timezone")
    zones = []
    if zone is not None and not getattr(zone, "choices", None):  # a text box: offer the zones
        zone.widget.attrs["list"] = "time-zones"
        zones = crontimes.zone_names()
    context = {"form": form, "schedule": schedule, "zones": zones}
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/schedule_edit.html", context, status=status)


@login_required
@permission_required("agents.add_schedule", raise_exception=True)
def schedule_create(request: HttpRequest) -> HttpResponse:
    initial = {}
    if request.GET.get("template"):  # "Schedule it" from the templates page
        initial["template"] = JobTemplate.objects.filter(name=request.GET["template"][:60]).first()
    form = ScheduleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            schedule = schedule_actions.create_schedule(form.schedule_fields(), user=request.user)
        except schedule_actions.ScheduleNameTaken as taken:
            form.add_error("name", str(taken))
        else:
            messages.success(request, f"Schedule {schedule.name} saved.")
            return redirect("dash-schedule", schedule.pk)
    return _edit_page(request, form, None)


@login_required
@permission_required("agents.change_schedule", raise_exception=True)
def schedule_edit(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=schedule_id)
    form = ScheduleForm(request.POST or None, instance=schedule)
    if request.method == "POST" and form.is_valid():
        try:
            changed = schedule_actions.edit_schedule(
                schedule, form.schedule_fields(), user=request.user
            )
        except schedule_actions.ScheduleNameTaken as taken:
            form.add_error("name", str(taken))
        else:
            saved = f"saved ({', '.join(changed)})" if changed else "unchanged"
            messages.success(request, f"Schedule {form.cleaned_data['name']} {saved}.")
            return redirect("dash-schedule", schedule.pk)
    return _edit_page(request, form, Schedule.objects.get(pk=schedule.pk))


def _set_enabled(request: HttpRequest, schedule_id: int, enabled: bool) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=schedule_id)
    word = "resumed" if enabled else "paused"
    if schedule_actions.set_schedule_enabled(schedule, enabled, user=request.user):
        messages.success(request, f"Schedule {schedule.name} {word}.")
    else:
        messages.info(request, f"Schedule {schedule.name} was {word} already.")
    return redirect("dash-schedule", schedule.pk)


@login_required
@require_POST
@permission_required("agents.change_schedule", raise_exception=True)
def schedule_pause(request: HttpRequest, schedule_id: int) -> HttpResponse:
    return _set_enabled(request, schedule_id, False)


@login_required
@require_POST
@permission_required("agents.change_schedule", raise_exception=True)
def schedule_resume(request: HttpRequest, schedule_id: int) -> HttpResponse:
    return _set_enabled(request, schedule_id, True)


@login_required
@require_POST
@permission_required("agents.delete_schedule", raise_exception=True)
def schedule_delete(request: HttpRequest, schedule_id: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=schedule_id)
    schedule_actions.delete_schedule(schedule, user=request.user)
    messages.success(request, f"Schedule {schedule.name} deleted; the jobs it made stay.")
    return redirect("dash-schedules")


urlpatterns: list = [
    path("schedules/", schedule_list, name="dash-schedules"),
    path("schedules/new/", schedule_create, name="dash-schedule-create"),
    path("schedules/<int:schedule_id>/", schedule_detail, name="dash-schedule"),
    path("schedules/<int:schedule_id>/edit/", schedule_edit, name="dash-schedule-edit"),
    path("schedules/<int:schedule_id>/pause/", schedule_pause, name="dash-schedule-pause"),
    path("schedules/<int:schedule_id>/resume/", schedule_resume, name="dash-schedule-resume"),
    path("schedules/<int:schedule_id>/delete/", schedule_delete, name="dash-schedule-delete"),
]
