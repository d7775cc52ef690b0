"""API: one action (cancel, retry, re-run) on every job the board's filters and a time range
select, previewed with `dry_run`. The selection and the rules are the bulk pages'
(agents.bulk, agents.bulk_forms); the action checks each job again under its lock."""

from __future__ import annotations

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions, bulk, tags
from agents.bulk_forms import ACTION_CHOICES, BulkActionForm
from agents.models import PRIORITY_HIGHEST, PRIORITY_LOWEST, Job, JobStatus

from .. import permissions as perm
from ..forms import checked, form_data

Q_CHARS = 200


class BulkRequestSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=ACTION_CHOICES,
        help_text="cancel: jobs not finished; retry: failed or cancelled jobs resume; "
        "rerun: finished jobs run again as new jobs. Jobs it does not apply to are skipped.",
    )
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=Q_CHARS,
        help_text="Text in the title or description.",
    )
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    priority = serializers.IntegerField(
        min_value=PRIORITY_HIGHEST, max_value=PRIORITY_LOWEST, required=False, allow_null=True
    )
    submitter = serializers.CharField(
        required=False, allow_blank=True, max_length=150, help_text="A username."
    )
    tag = serializers.CharField(required=False, allow_blank=True, max_length=tags.TAG_CHARS)
    created_after = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Jobs created at or after this time."
    )
    created_before = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Jobs created before this time."
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="true: only say what it would do (the preview)."
    )


class PreviewJobSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(source="tag_list", child=serializers.CharField(), read_only=True)
    eligible = serializers.BooleanField(read_only=True, help_text="Whether the action applies.")
    skip_reason = serializers.CharField(read_only=True, help_text="Why not, if it does not.")

    class Meta:
        model = Job
        fields = ["id", "title", "status", "priority", "tags", "created_at", "eligible"]
        fields += ["skip_reason"]
        read_only_fields = fields


class BulkPreviewSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTION_CHOICES)
    count = serializers.IntegerField(help_text="Jobs the filter selects.")
    eligible = serializers.IntegerField(help_text="Of them, those the action applies to.")
    refused = serializers.DictField(
        child=serializers.IntegerField(), help_text="How many would be skipped, by reason."
    )
    max_jobs = serializers.IntegerField(
        help_text="The most jobs one bulk action takes (BULK_MAX_JOBS): above it, narrow "
        "the filter."
    )
    jobs = PreviewJobSerializer(
        many=True, help_text=f"The first {bulk.PREVIEW_JOBS} selected, newest first."
    )


class BulkResultSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTION_CHOICES)
    applied = serializers.ListField(
        child=serializers.IntegerField(), help_text="The ids of the jobs acted on."
    )
    skipped = serializers.DictField(
        child=serializers.CharField(), help_text="Job id → why the action did not apply."
    )
    created = serializers.ListField(
        child=serializers.IntegerField(), help_text="For rerun: the new jobs' ids."
    )


BULK_ANSWER = PolymorphicProxySerializer(
    component_name="BulkAnswer",
    serializers=[BulkPreviewSerializer, BulkResultSerializer],
    resource_type_field_name=None,
)


class JobsBulk(APIView):
    required = {"POST": (perm.VIEW_JOB, perm.OPERATE)}

    @extend_schema(
        summary="Cancel, retry or re-run every job a filter selects (dry_run: the preview)",
        request=BulkRequestSerializer,
        responses={200: BULK_ANSWER},
    )
    def post(self, request: Request) -> Response:
        body = BulkRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        dry_run = values.pop("dry_run")
        form = BulkActionForm(data=form_data(values))
        checked(form)
        action, jobs = form.cleaned_data["action"], bulk.select(**form.filters())
        if dry_run:
            preview = bulk.preview(jobs, action)
            answer = {**vars(preview), "max_jobs": settings.BULK_MAX_JOBS}
            return Response(BulkPreviewSerializer(answer).data)
        try:
            result = actions.bulk_act(action, jobs, user=request.user)
        except actions.TooManyJobs as exc:
            error = ErrorDetail(str(exc), "too_many")
            raise ValidationError({"non_field_errors": [error]}) from None
        return Response(BulkResultSerializer(vars(result)).data)


urlpatterns: list = [
    path("jobs/bulk", JobsBulk.as_view(), name="api-jobs-bulk"),
]
