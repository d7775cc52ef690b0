"""The overview's series over a period (agents.stats), as JSON or as one CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, timedelta

from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import stats
from agents.text import csv_cell

from .. import permissions as perm
from ..errors import InvalidQuery

WINDOW = timedelta(hours=24)
CSV = "text/csv"
# A cell a spreadsheet would read as a formula is written with a quote first.


class StatsQuerySerializer(serializers.Serializer):
    bucket = serializers.ChoiceField(
        choices=list(stats.BUCKET_S), default="hour", help_text="UTC minutes, hours or days."
    )
    format = serializers.ChoiceField(
        choices=["json", "csv"], required=False, help_text="`csv`: as `Accept: text/csv`."
    )

    def get_fields(self) -> dict:
        # `from` is a Python keyword: the fields are declared here rather than as attributes.
        return {
            "from": serializers.DateTimeField(
                required=False,
                help_text="Default: 24 hours before `to`; rounded down to its bucket's start.",
            ),
            "to": serializers.DateTimeField(required=False, help_text="Default: now."),
            **super().get_fields(),
        }


def _series(child: serializers.Field) -> serializers.ListField:
    return serializers.ListField(child=child, help_text="One value per bucket, as `starts`.")


def _number(null: bool = False) -> serializers.FloatField:
    return serializers.FloatField(allow_null=null)


class StatsSerializer(serializers.Serializer):
    start = serializers.DateTimeField(default_timezone=UTC, help_text="The first bucket's start.")
    end = serializers.DateTimeField(default_timezone=UTC, help_text="The last bucket's end.")
    bucket = serializers.CharField()
    bucket_s = serializers.IntegerField(help_text="Seconds in a bucket.")
    starts = serializers.ListField(child=serializers.DateTimeField(default_timezone=UTC))
    jobs_by_outcome = serializers.DictField(
        child=_series(serializers.IntegerField()), help_text="Jobs that ended, by status."
    )
    calls = _series(serializers.IntegerField())
    tokens = _series(serializers.IntegerField())
    spend_by_model = serializers.DictField(child=_series(_number()), help_text="USD.")
    spend_by_agent = serializers.DictField(
        child=_series(_number()), help_text="USD, by agent slug (`(no agent)` for none)."
    )
    latency_by_model = serializers.DictField(
        child=serializers.DictField(child=_series(_number(null=True))),
        help_text="Seconds: `p50` and `p95` by model (null with no call).",
    )
    errors_by_kind = serializers.DictField(
        child=_series(serializers.IntegerField()), help_text="`429`, `5xx`, `timeout`, `tool`."
    )
    queue_wait = serializers.DictField(
        child=_series(_number(null=True)),
        help_text="Seconds a step waited from ready to claimed: `p50` and `p95`.",
    )
    in_flight = _series(_number())
    cap = serializers.IntegerField(help_text="LLM_MAX_CONCURRENCY.")


class CSVRenderer(renderers.BaseRenderer):
    """A table (a list of rows) as CSV; a problem (an error's body) stays JSON."""

    media_type = CSV
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            return json.dumps(data).encode()
        out = io.StringIO()
        csv.writer(out).writerows(data or [])
        return out.getvalue().encode()


class _FormatParameter(DefaultContentNegotiation):
    """`?format=csv` picks the CSV, as `Accept: text/csv` does."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if request.query_params.get("format") == "csv":
            for renderer in renderers:
                if renderer.format == "csv":
                    return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)


def table(data: stats.Overview) -> list[list[str]]:
    """A row per bucket, a column per series (a header row first)."""
    columns: list[tuple[str, list]] = [
        *((f"jobs {status}", v) for status, v in data.jobs_by_outcome.items()),
        ("calls", data.calls),
        ("tokens", data.tokens),
        *((f"spend {model} (USD)", v) for model, v in data.spend_by_model.items()),
        *((f"spend agent {agent} (USD)", v) for agent, v in data.spend_by_agent.items()),
        *(
            (f"latency {model} {q} (s)", v)
            for model, quantiles in data.latency_by_model.items()
            for q, v in quantiles.items()
        ),
        *((f"errors {kind}", v) for kind, v in data.errors_by_kind.items()),
        *((f"queue wait {q} (s)", v) for q, v in data.queue_wait.items()),
        ("in flight", data.in_flight),
        ("cap", [data.cap] * len(data.starts)),
    ]
    rows = [["start (UTC)", *(csv_cell(name) for name, _ in columns)]]
    for n, start in enumerate(data.starts):
        rows.append([start.isoformat(), *(csv_cell(values[n]) for _, values in columns)])
    return rows


class Stats(APIView):
    """The overview's series in UTC buckets: jobs by outcome, calls, tokens, spend, latency,
    errors, queue wait and calls in flight."""

    required = {"GET": (perm.VIEW_JOB, perm.VIEW_CALL)}
    query_problems = ("GET",)
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    content_negotiation_class = _FormatParameter

    @extend_schema(
        summary="The overview's series over a period, by minute, hour or day",
        parameters=[StatsQuerySerializer],
        responses={
            (200, "application/json"): StatsSerializer,
            (200, CSV): OpenApiResponse(
                OpenApiTypes.STR, description="A row per bucket, a column per series."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = StatsQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise InvalidQuery(query.errors)
        values = query.validated_data
        until = values.get("to") or timezone.now()
        try:
            since = values.get("from") or until - WINDOW
        except OverflowError:  # a `to` within a day of year 1
            raise InvalidQuery({"to": ["to is too early."]}) from None
        if since >= until:
            raise InvalidQuery({"from": ["from must be before to."]})
        try:
            data = stats.series(since, until, values["bucket"])
        except (ValueError, OverflowError) as exc:
            raise InvalidQuery({"bucket": [str(exc)]}) from None
        if request.accepted_renderer.format == "csv":
            name = f"baton-stats-{data.start:%Y%m%dT%H%M}Z-{values['bucket']}.csv"
            headers = {"Content-Disposition": f'attachment; filename="{name}"'}
            return Response(table(data), headers=headers)
        return Response(body(data))


def _iso(moment) -> str:
    # isoformat, not strftime: "%Y" leaves a year before 1000 unpadded (not RFC 3339).
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def body(data: stats.Overview) -> dict:
    """StatsSerializer's shape, built directly: thousands of numbers, each through a DRF
    field, would cost more than reading them."""
    names = [name for name in StatsSerializer().fields if name not in ("start", "end", "starts")]
    out = {name: getattr(data, name) for name in names}
    return {"start": _iso(data.start), "end": _iso(data.end),
            "starts": [_iso(s) for s in data.starts], **out}  # fmt: skip


urlpatterns = [path("stats", Stats.as_view(), name="api-stats")]
