"""API: schedules: a template submitted on a cron expression or an interval, in a time zone.
List, read (with the next runs and the recent ones), write, pause and resume. Reads need
view_schedule; writes their own permission, which the action checks again. The rules are the
schedule form's (agents.schedule_forms), as on the pages."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions, crontimes
from agents.models import JobTemplate, MissedRuns, Overlap, Schedule, ScheduleRun
from agents.schedule_forms import INTERVAL_MAX_S, WRITTEN, ScheduleForm
from agents.schedules import next_runs

from .. import permissions as perm
from ..errors import Conflict, get_or_404
from ..forms import checked, form_data
from .job_templates import ByName

NEXT_RUNS = 5
RECENT_RUNS = 20
CRON_HELP = (
    "Five fields, as cron has: minute hour day-of-month month day-of-week (`0 9 * * 1-5`: "
    "09:00 on weekdays), read in `timezone`. Give it or `interval_s`, not both: to switch, "
    "set the other to null."
)


class ScheduleSerializer(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="name", read_only=True)
    every = serializers.SerializerMethodField(help_text="The timing, in words.")
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "template",
            "cron",
            "interval_s",
            "timezone",
            "every",
            "enabled",
            "on_missed",
            "on_overlap",
            "next_run_at",
            "last_run_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_every(self, schedule: Schedule) -> str:
        return crontimes.describe(schedule.cron or None, schedule.interval_s)


class ScheduleRunSerializer(serializers.ModelSerializer):
    job_status = serializers.CharField(
        source="job.status", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = ScheduleRun
        fields = ["due_at", "outcome", "note", "job", "job_status", "created_at"]
        read_only_fields = fields
        extra_kwargs = {"job": {"help_text": "The job the run submitted, if it started one."}}


class ScheduleDetailSerializer(ScheduleSerializer):
    next_runs = serializers.SerializerMethodField(
        help_text=f"The next {NEXT_RUNS} due times (for a paused schedule: if resumed now)."
    )
    recent_runs = serializers.SerializerMethodField(
        help_text=f"The last {RECENT_RUNS} due times and what came of each, newest first."
    )

    class Meta(ScheduleSerializer.Meta):
        fields = [*ScheduleSerializer.Meta.fields, "next_runs", "recent_runs"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_runs(self, schedule: Schedule) -> list[str]:
        field = serializers.DateTimeField()
        return [field.to_representation(at) for at in next_runs(schedule, NEXT_RUNS)]

    @extend_schema_field(ScheduleRunSerializer(many=True))
    def get_recent_runs(self, schedule: Schedule) -> list[dict]:
        runs = schedule.runs.select_related("job").order_by("-due_at", "-id")[:RECENT_RUNS]
        return ScheduleRunSerializer(runs, many=True).data


class ScheduleWriteSerializer(serializers.Serializer):
    """What an Operator sets; checked again by the schedule pages' form."""

    name = serializers.CharField(max_length=Schedule._meta.get_field("name").max_length)
    template = serializers.SlugRelatedField(
        slug_field="name",
        queryset=JobTemplate.objects.all(),
        help_text="A template's name.",
        error_messages={"does_not_exist": "No template is named “{value}”."},
    )
    cron = serializers.CharField(
        max_length=crontimes.CRON_CHARS,
        allow_blank=True,
        allow_null=True,
        required=False,
        help_text=CRON_HELP,
    )
    interval_s = serializers.IntegerField(
        min_value=1,
        max_value=INTERVAL_MAX_S,
        allow_null=True,
        required=False,
        help_text="Every N seconds, instead of a cron expression.",
    )
    timezone = serializers.CharField(
        max_length=crontimes.ZONE_CHARS,
        required=False,
        help_text="An IANA zone (Europe/Berlin); default: the server's TIME_ZONE.",
    )
    enabled = serializers.BooleanField(required=False, help_text="false: created paused.")
    on_missed = serializers.ChoiceField(
        choices=MissedRuns.choices,
        required=False,
        help_text="Due times missed while no worker ran: run once for all of them, or skip.",
    )
    on_overlap = serializers.ChoiceField(
        choices=Overlap.choices,
        required=False,
        help_text="A run due while the previous one still goes: skip it, run anyway, or "
        "cancel the previous.",
    )


def _schedules():
    return Schedule.objects.select_related("template", "created_by")


def _schedule(schedule_id: int) -> Schedule:
    return get_or_404(_schedules(), "schedule", pk=schedule_id)


def _form(values: dict, instance: Schedule | None = None) -> ScheduleForm:
    data = form_data({name: values.get(name) for name in WRITTEN})
    data["template"] = values["template"].pk
    return ScheduleForm(data=data, instance=instance)


def _detail(schedule_id: int, code: int = status.HTTP_200_OK) -> Response:
    return Response(ScheduleDetailSerializer(_schedule(schedule_id)).data, status=code)


def _named(write):
    try:
        return write()
    except actions.ScheduleNameTaken as exc:
        raise Conflict(str(exc)) from None


class ScheduleList(generics.ListAPIView):
    required = {"GET": (perm.VIEW_SCHEDULE,), "POST": (perm.ADD_SCHEDULE,)}
    problems = {"POST": (409,)}
    serializer_class = ScheduleSerializer
    pagination_class = ByName

    def get_queryset(self):
        return _schedules()

    @extend_schema(summary="Schedules, by name")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Schedule a template",
        request=ScheduleWriteSerializer,
        responses={201: ScheduleDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        body = ScheduleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        defaults = {
            "enabled": True,
            "on_missed": Schedule._meta.get_field("on_missed").default,
            "on_overlap": Schedule._meta.get_field("on_overlap").default,
        }
        fields = checked(_form({**defaults, **body.validated_data}))
        schedule = _named(lambda: actions.create_schedule(fields, user=request.user))
        return _detail(schedule.pk, status.HTTP_201_CREATED)


class ScheduleDetail(APIView):
    required = {
        "GET": (perm.VIEW_SCHEDULE,),
        "PATCH": (perm.VIEW_SCHEDULE, perm.CHANGE_SCHEDULE),
        "DELETE": (perm.VIEW_SCHEDULE, perm.DELETE_SCHEDULE),
    }
    problems = {"PATCH": (409,)}

    @extend_schema(
        summary="A schedule, its next runs and its recent ones",
        responses=ScheduleDetailSerializer,
    )
    def get(self, request: Request, schedule_id: int) -> Response:
        return _detail(schedule_id)

    @extend_schema(
        summary="Edit a schedule (omitted fields stay; a new timing counts from now)",
        request=ScheduleWriteSerializer(partial=True),
        responses=ScheduleDetailSerializer,
    )
    def patch(self, request: Request, schedule_id: int) -> Response:
        schedule = _schedule(schedule_id)
        body = ScheduleWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        current = {name: getattr(schedule, name) for name in WRITTEN}
        fields = checked(_form({**current, **body.validated_data}, instance=schedule))
        _named(lambda: actions.edit_schedule(schedule, fields, user=request.user))
        return _detail(schedule_id)

    @extend_schema(
        summary="Delete a schedule and its runs' records (the jobs it made stay)",
        responses={204: None},
    )
    def delete(self, request: Request, schedule_id: int) -> Response:
        actions.delete_schedule(_schedule(schedule_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleSwitch(APIView):
    """Pause or resume: 200 with the schedule, whether or not it was so already."""

    required = {"POST": (perm.VIEW_SCHEDULE, perm.CHANGE_SCHEDULE)}
    enabled = True

    def post(self, request: Request, schedule_id: int) -> Response:
        actions.set_schedule_enabled(_schedule(schedule_id), self.enabled, user=request.user)
        return _detail(schedule_id)


@extend_schema(
    summary="Pause a schedule: no run until it is resumed",
    request=None,
    responses=ScheduleDetailSerializer,
)
class SchedulePause(ScheduleSwitch):
    enabled = False


@extend_schema(
    summary="Resume a schedule: runs from now on (what it missed while paused is not made up)",
    request=None,
    responses=ScheduleDetailSerializer,
)
class ScheduleResume(ScheduleSwitch):
    enabled = True


urlpatterns: list = [
    path("schedules", ScheduleList.as_view(), name="api-schedules"),
    path("schedules/<int:schedule_id>", ScheduleDetail.as_view(), name="api-schedule"),
    path("schedules/<int:schedule_id>/pause", SchedulePause.as_view(), name="api-schedule-pause"),
    path(
        "schedules/<int:schedule_id>/resume",
        ScheduleResume.as_view(),
        name="api-schedule-resume",
    ),
]
