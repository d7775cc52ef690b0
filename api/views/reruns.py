"""Re-run a job from one of its subtasks (agents.rerun), as the subtask's page does."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import rerun
from agents.forms import RerunForm

from .. import permissions as perm
from ..errors import Conflict
from ..forms import checked, form_data
from ..serializers import JobDetailSerializer
from .jobs import _detail, _subtask


class RerunSerializer(serializers.Serializer):
    """What the re-run changes in the chosen step; omitted, it runs as before."""

    description = serializers.CharField(
        max_length=RerunForm.base_fields["description"].max_length,
        required=False,
        help_text="The step's new input.",
    )
    agent = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="An enabled agent's slug that may run the step's type; null: as the plan chose.",
    )
    version = serializers.IntegerField(
        min_value=1,
        allow_null=True,
        required=False,
        help_text="The agent's version to run the step with (the chosen agent's, or the one "
        "that ran it); null: its current one.",
    )


class SubtaskRerun(APIView):
    required = {"POST": (perm.SUBMIT, perm.OPERATE)}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="Re-run the job from this subtask: what is upstream is copied, not called",
        request=RerunSerializer,
        responses={201: JobDetailSerializer},
    )
    def post(self, request: Request, subtask_id: int) -> Response:
        sub = _subtask(subtask_id)
        body = RerunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = {"description": sub.description, "agent": None, "version": None}
        values.update(body.validated_data)
        fields = checked(RerunForm(data=form_data(values), sub=sub))
        try:
            job = rerun.rerun_from(sub, request.user, **fields)
        except rerun.RerunRefused as refused:
            raise Conflict(str(refused)) from None
        response = _detail(request, job.pk, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(reverse("api-job", args=[job.pk]))
        return response
