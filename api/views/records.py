"""What happened: a job's call trace, its shared state's versions, and spend over a period."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import state
from agents.models import Job, LLMCall, SharedState, SharedStateVersion
from agents.queries import spend

from .. import permissions as perm
from ..errors import InvalidQuery, get_or_404
from ..pagination import InOrder, NewestVersionFirst
from ..serializers import (
    CallSerializer,
    DiffQuerySerializer,
    SpendQuerySerializer,
    SpendSerializer,
    StateDiffSerializer,
    StateSerializer,
    StateVersionDetailSerializer,
    StateVersionSerializer,
)

SPEND_WINDOW = timedelta(hours=24)
READ_STATE = {"GET": (perm.VIEW_JOB, perm.VIEW_STATE)}


def _query(serializer_class, request: Request) -> dict:
    query = serializer_class(data=request.query_params)
    if not query.is_valid():
        raise InvalidQuery(query.errors)
    return query.validated_data


def _job_id(job_id: int) -> int:
    return get_or_404(Job.objects.only("pk"), "job", pk=job_id).pk


class JobCalls(generics.ListAPIView):
    """Every LLM call made for the job, in order: planning, each subtask's attempts, synthesis."""

    required = {"GET": (perm.VIEW_JOB, perm.VIEW_CALL)}
    serializer_class = CallSerializer
    pagination_class = InOrder

    def get_queryset(self):
        job_id = _job_id(self.kwargs["job_id"])
        calls = LLMCall.objects.filter(job_id=job_id).select_related("agent", "subtask")
        return calls.prefetch_related("tool_runs")

    @extend_schema(summary="A job's call trace")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


def _versions(job_id: int):
    return SharedStateVersion.objects.filter(state__job_id=job_id)


def _version_data(job_id: int, number: int) -> dict:
    """The whole state as of a version, rebuilt by agents.state (versions keep changes)."""
    data = state.version_data(job_id, number)
    if data is None:
        raise NotFound(f"No state version {number}.")
    return data


class JobState(APIView):
    required = READ_STATE

    @extend_schema(summary="A job's shared state as it is now", responses=StateSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        current = SharedState.objects.filter(job_id=_job_id(job_id)).first()
        if current is None:
            return Response({"version": 0, "data": {}, "updated_at": None})
        return Response(StateSerializer(current).data)


class StateVersions(generics.ListAPIView):
    required = READ_STATE
    serializer_class = StateVersionSerializer
    pagination_class = NewestVersionFirst

    def get_queryset(self):
        versions = _versions(_job_id(self.kwargs["job_id"]))
        return versions.only("version", "author", "created_at", "changes")

    @extend_schema(summary="The versions of a job's shared state, newest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class StateVersion(APIView):
    required = READ_STATE

    @extend_schema(
        summary="One version of a job's shared state, whole",
        responses=StateVersionDetailSerializer,
    )
    def get(self, request: Request, job_id: int, version: int) -> Response:
        found = get_or_404(_versions(_job_id(job_id)), "state version", version=version)
        return Response(StateVersionDetailSerializer(found).data)


class StateDiff(APIView):
    required = READ_STATE
    query_problems = ("GET",)

    @extend_schema(
        summary="What changed in a job's shared state between two versions",
        parameters=[DiffQuerySerializer],
        responses=StateDiffSerializer,
    )
    def get(self, request: Request, job_id: int) -> Response:
        query = _query(DiffQuerySerializer, request)
        latest = SharedState.objects.filter(job_id=_job_id(job_id)).values_list("version")
        to = query.get("to", (latest.first() or (0,))[0])
        base = query.get("from", max(to - 1, 0))
        changes = state.diff(_version_data(job_id, base), _version_data(job_id, to))
        rows = [{"path": p, "change": c, "old": o, "new": n} for p, c, o, n in changes]
        body = {"from_version": base, "to_version": to, "changes": rows}
        return Response(StateDiffSerializer(body).data)


class Spend(APIView):
    required = {"GET": (perm.VIEW_AGENT, perm.VIEW_CALL)}
    query_problems = ("GET",)

    @extend_schema(
        summary="Calls, tokens and cost by agent and by model over a period",
        parameters=[SpendQuerySerializer],
        responses=SpendSerializer,
    )
    def get(self, request: Request) -> Response:
        query = _query(SpendQuerySerializer, request)
        until = query.get("until") or timezone.now()
        try:
            since = query.get("since") or until - SPEND_WINDOW
        except OverflowError:  # an `until` within a day of year 1
            raise InvalidQuery({"until": ["until is too early."]}) from None
        if since >= until:
            raise InvalidQuery({"since": ["since must be before until."]})
        calls = LLMCall.objects.filter(created_at__gte=since, created_at__lt=until)
        body = {
            "since": since,
            "until": until,
            "by_agent": _rows(spend(calls, "agent__slug"), "agent__slug"),
            "by_model": _rows(spend(calls, "model"), "model"),
        }
        return Response(SpendSerializer(body).data)


def _rows(rows, key: str) -> list[dict]:
    return [{"key": row.pop(key), **row} for row in rows]
