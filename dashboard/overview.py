"""The overview: how the system behaves over a time range, as charts (dashboard.charts) of the
figures agents.stats keeps, with a CSV per chart. The last hour is kept live (dashboard.live).

Reads need the overview's permissions (jobs and their LLM calls).
"""

from __future__ import annotations

import csv
import io

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path, reverse

from agents import stats
from agents.text import csv_cell

from .access import read_required
from .charts import Chart, figure_parts

LIVE_RANGE = "1h"


RANGE_LABELS = {"1h": "Last hour", "24h": "24 h", "7d": "7 days", "30d": "30 days"}
REASON_CHARS = 160  # a failure's reason, shortened on the page
# A cell a spreadsheet would read as a formula is written with a quote first.


def range_key(request: HttpRequest) -> str:
    key = request.GET.get("range", stats.DEFAULT_RANGE)
    return key if key in stats.RANGES else stats.DEFAULT_RANGE


def charts(data) -> list[Chart]:
    """The overview's charts, in the page's order, from one agents.stats.Overview."""
    common = {"starts": data.starts, "bucket": data.bucket}
    latency = {
        f"{model} {q}": values
        for model, quantiles in data.latency_by_model.items()
        for q, values in quantiles.items()
    }
    return [
        Chart("jobs", "Jobs by outcome", "jobs", "bars", series=data.jobs_by_outcome, **common),
        Chart("calls", "LLM calls", "calls", "line", series={"calls": data.calls}, **common),
        Chart("tokens", "Tokens", "tokens", "line", series={"tokens": data.tokens}, **common),
        Chart("spend-model", "Spend by model", "USD", "bars", series=data.spend_by_model, **common),
        Chart("spend-agent", "Spend by agent", "USD", "bars", series=data.spend_by_agent, **common),
        Chart("latency", "LLM latency p50 / p95 by model", "s", "line", series=latency, **common),
        Chart("errors", "Errors by kind", "errors", "bars", series=data.errors_by_kind, **common),
        Chart("queue-wait", "Queue wait p50 / p95", "s", "line", series=data.queue_wait, **common),
        Chart(
            "in-flight",
            "Provider calls in flight against the cap",
            "calls",
            "line",
            series={"in flight (mean)": data.in_flight, "cap": [data.cap] * len(data.starts)},
            dashed={"cap"},
            **common,
        ),
    ]


def context(key: str) -> dict:
    """What the page and its live fragment show: one agents.stats.overview."""
    data = stats.overview(key)
    for job in data.latest_failures:
        reason = (job.error or "").replace("\x00", "")
        job.reason = reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"
    return {
        "range": key,
        "ranges": [(k, RANGE_LABELS.get(k, k)) for k in stats.RANGES],
        "live": key == LIVE_RANGE,
        "overview": data,
        "charts": [
            (chart, figure_parts(chart), reverse(f"dash-overview-csv-{chart.slug}"))
            for chart in charts(data)
        ],
    }


def render_live() -> str:
    """The last hour's fragment, as the page renders it, for the live group."""
    return render_to_string("dashboard/_overview_body.html", {**context(LIVE_RANGE), "oob": True})


@read_required("overview")
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", context(range_key(request)))


@read_required("overview")
def overview_csv(request: HttpRequest, chart: str) -> HttpResponse:
    key = range_key(request)
    found = next((c for c in charts(stats.overview(key)) if c.slug == chart), None)
    if found is None:
        raise Http404("No such chart.")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["bucket_start_utc", *(csv_cell(f"{n} ({found.unit})") for n in found.series)])
    for i, when in enumerate(found.starts):
        writer.writerow(
            [when.isoformat(), *(csv_cell(values[i]) for values in found.series.values())]
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    filename = f"baton-overview-{found.slug}-{key}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# One route per chart (no converter): each CSV's address is fixed and names its chart.
CHARTS = (
    "jobs",
    "calls",
    "tokens",
    "spend-model",
    "spend-agent",
    "latency",
    "errors",
    "queue-wait",
    "in-flight",
)
urlpatterns = [
    path("overview/", overview, name="dash-overview"),
    *(
        path(
            f"overview/csv/{slug}/", overview_csv, {"chart": slug}, name=f"dash-overview-csv-{slug}"
        )
        for slug in CHARTS
    ),
]
