"""API: job templates: list, read, write, and submit one as a job (with an Idempotency-Key,
as POST /jobs). Reads need view_jobtemplate; writes their own permission, which the action
checks again; a submit needs what submitting a job needs. The rules are the template form's
(agents.template_forms), as on the pages."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError as InvalidValue
from django.db import IntegrityError
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions, crontimes, tags
from agents.models import JobTemplate
from agents.template_forms import JobTemplateForm

from .. import permissions as perm
from ..errors import Conflict, get_or_404
from ..forms import checked, form_data
from ..pagination import Cursor
from ..serializers import TAGS_HELP, JobDetailSerializer
from .jobs import IDEMPOTENCY, submitted

# The form's fields but the pins, which the API takes as an object rather than as text.
FIELDS = [name for name in JobTemplateForm.Meta.fields if name != "agent_versions"]
PINS_HELP = 'Pinned agent versions, as {"reviewer": 2}: those agents run as they were then.'
TEXT_HELP = "Placeholders such as {date} and {time} are filled when it is submitted."


class ByName(Cursor):
    ordering = ("name",)


class JobTemplateSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(source="tag_list", child=serializers.CharField(), read_only=True)
    agent_versions = serializers.DictField(
        child=serializers.IntegerField(), read_only=True, help_text=PINS_HELP
    )
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    schedules = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True, help_text="The schedules that submit it."
    )

    class Meta:
        model = JobTemplate
        fields = [
            "id",
            *FIELDS,
            "tags",
            "agent_versions",
            "schedules",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class JobTemplateWriteSerializer(serializers.ModelSerializer):
    """What an Operator sets; checked again by the template pages' form."""

    tags = serializers.ListField(
        child=serializers.CharField(max_length=tags.TAG_CHARS), required=False, help_text=TAGS_HELP
    )
    agent_versions = serializers.DictField(
        child=serializers.IntegerField(min_value=1), required=False, help_text=PINS_HELP
    )

    class Meta:
        model = JobTemplate
        fields = [*FIELDS, "tags", "agent_versions"]
        text = {"allow_blank": True, "trim_whitespace": False, "help_text": TEXT_HELP}
        # The form checks the name is free and says so as the pages do.
        extra_kwargs = {"name": {"validators": []}, "title": text, "description": text}


class TemplateSubmitSerializer(serializers.Serializer):
    timezone = serializers.CharField(
        required=False,
        max_length=crontimes.ZONE_CHARS,
        help_text="The zone the placeholders' dates and times are read in (default: the "
        "server's TIME_ZONE), e.g. Europe/Berlin.",
    )

    def validate_timezone(self, value: str) -> str:
        try:
            return crontimes.validate_timezone(value)
        except InvalidValue as exc:
            raise serializers.ValidationError(exc.messages) from None


def _queryset():
    return JobTemplate.objects.select_related("created_by").prefetch_related("schedules")


def _template(name: str) -> JobTemplate:
    return get_or_404(_queryset(), "template", name=name)


def _fields(values: dict, instance: JobTemplate | None = None) -> dict:
    data = form_data({name: values.get(name) for name in FIELDS})
    data["tags"] = values.get("tags") or []
    data["agent_versions"] = json.dumps(values.get("agent_versions") or {})
    return checked(JobTemplateForm(data=data, instance=instance))


def _saved(write, name: str):
    try:
        return write()
    except IntegrityError:  # the name was taken between the form's check and the write
        raise Conflict(f"A template named {name} exists.") from None


class TemplateList(generics.ListAPIView):
    required = {"GET": (perm.VIEW_TEMPLATE,), "POST": (perm.ADD_TEMPLATE,)}
    problems = {"POST": (409,)}
    serializer_class = JobTemplateSerializer
    pagination_class = ByName

    def get_queryset(self):
        return _queryset()

    @extend_schema(summary="Job templates, by name")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Save a job template",
        request=JobTemplateWriteSerializer,
        responses={201: JobTemplateSerializer},
    )
    def post(self, request: Request) -> Response:
        body = JobTemplateWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        defaults = {name: JobTemplate._meta.get_field(name).get_default() for name in FIELDS}
        fields = _fields({**defaults, **body.validated_data})
        template = _saved(
            lambda: actions.create_template(fields, user=request.user), fields["name"]
        )
        data = JobTemplateSerializer(_template(template.name)).data
        return Response(data, status=status.HTTP_201_CREATED)


class TemplateDetail(APIView):
    required = {
        "GET": (perm.VIEW_TEMPLATE,),
        "PATCH": (perm.VIEW_TEMPLATE, perm.CHANGE_TEMPLATE),
        "DELETE": (perm.VIEW_TEMPLATE, perm.DELETE_TEMPLATE),
    }
    problems = {"PATCH": (409,), "DELETE": (409,)}

    @extend_schema(summary="A job template", responses=JobTemplateSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(JobTemplateSerializer(_template(name)).data)

    @extend_schema(
        summary="Edit a job template (omitted fields stay; jobs it made keep theirs)",
        request=JobTemplateWriteSerializer(partial=True),
        responses=JobTemplateSerializer,
    )
    def patch(self, request: Request, name: str) -> Response:
        template = _template(name)
        body = JobTemplateWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        current = {field: getattr(template, field) for field in FIELDS}
        current |= {"tags": template.tag_list, "agent_versions": template.agent_versions}
        fields = _fields({**current, **body.validated_data}, instance=template)
        _saved(lambda: actions.edit_template(template, fields, user=request.user), fields["name"])
        return Response(JobTemplateSerializer(_template(fields["name"])).data)

    @extend_schema(
        summary="Delete a job template (409 while a schedule submits it)", responses={204: None}
    )
    def delete(self, request: Request, name: str) -> Response:
        try:
            actions.delete_template(_template(name), user=request.user)
        except actions.TemplateInUse as exc:
            raise Conflict(f"Template {name} is in use: {exc}") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateSubmit(APIView):
    required = {"POST": (perm.VIEW_TEMPLATE, perm.SUBMIT)}
    problems = {"POST": (409, 429)}

    @extend_schema(
        summary="Submit a job template as a job, its placeholders filled now",
        request=TemplateSubmitSerializer,
        parameters=IDEMPOTENCY,
        responses={201: JobDetailSerializer, 200: JobDetailSerializer},
    )
    def post(self, request: Request, name: str) -> Response:
        template = _template(name)
        body = TemplateSubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tz_name = body.validated_data.get("timezone")

        def submit():
            try:
                return actions.submit_template(template, user=request.user, tz_name=tz_name)
            except actions.TemplateRefused as exc:
                raise Conflict(str(exc)) from None

        return submitted(request, submit)


urlpatterns: list = [
    path("templates", TemplateList.as_view(), name="api-templates"),
    path("templates/<slug:name>", TemplateDetail.as_view(), name="api-template"),
    path("templates/<slug:name>/submit", TemplateSubmit.as_view(), name="api-template-submit"),
]
