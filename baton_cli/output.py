"""What people read: aligned tables, a job's progress line, numbers as they are written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TextIO


def dumps(document: dict | list) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] = frozenset()):
    """Columns padded to their widest cell (numbers, the `right` ones, flush right)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [
            str(cell).rjust(w) if i in right else str(cell).ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def tokens(n: int | None) -> str:
    return f"{n or 0:,}"


def money(amount: str | None) -> str:
    try:
        return f"${Decimal(amount or 0):,.4f}"
    except InvalidOperation:
        return f"${amount}"


def when(stamp: str | None) -> str:
    """An ISO timestamp from the API, in the local time zone, to the minute."""
    if not stamp:
        return "-"
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")


def progress(job: dict) -> str:
    """`job 12 working · 2/3 subtasks done · 1,234 tokens · $0.0012`"""
    total = job.get("subtasks_total") or 0
    plan = f"{job.get('subtasks_done') or 0}/{total} subtasks done" if total else "no plan yet"
    parts = [f"job {job['id']} {job['status']}", plan]
    if "review" in job.get("controls", ()):
        parts.append("plan awaits review")
    parts += [f"{tokens(job.get('total_tokens'))} tokens", money(job.get("total_cost"))]
    return " · ".join(parts)


def jobs_table(jobs: list[dict]) -> str:
    headers = ("ID", "STATUS", "PRI", "DONE", "TOKENS", "COST", "CREATED", "TITLE")
    rows = [
        (
            j["id"],
            j["status"],
            j["priority"],
            f"{j.get('subtasks_done') or 0}/{j.get('subtasks_total') or 0}",
            tokens(j.get("total_tokens")),
            money(j.get("total_cost")),
            when(j.get("created_at")),
            j["title"],
        )
        for j in jobs
    ]
    return table(headers, rows, right={0, 2, 3, 4, 5})


def agents_table(agents: list[dict]) -> str:
    headers = ("SLUG", "ENABLED", "LOAD", "SUCCESS", "LATENCY", "TOKENS", "COST", "SPECIALTIES")
    rows = [
        (
            a["slug"],
            "yes" if a["enabled"] else "no",
            f"{a.get('load') or 0}/{a.get('max_concurrency') or 0}",
            f"{(a.get('success_rate') or 0) * 100:.0f}%",
            f"{a.get('avg_latency_s') or 0:.2f}s",
            tokens(a.get("total_tokens")),
            money(a.get("total_cost")),
            ", ".join(a.get("specialties") or []) or "-",
        )
        for a in agents
    ]
    return table(headers, rows, right={2, 3, 4, 5, 6})


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def interval(mean: float | None, low: float | None, high: float | None) -> str:
    """`0.720 [0.610, 0.830]`, or the mean alone when there is no interval."""
    if low is None or high is None:
        return _score(mean)
    return f"{_score(mean)} [{_score(low)}, {_score(high)}]"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def experiment_progress(experiment: dict) -> str:
    """`experiment 7 running · 3/5 cases done · 1 failed · 1,234 tokens · $0.0012`"""
    summary = experiment["summary"]
    parts = [
        f"experiment {experiment['id']} {experiment['status']}",
        f"{summary['done']}/{summary['total']} cases done",
    ]
    if summary["failed"]:
        parts.append(f"{summary['failed']} failed")
    parts += [f"{tokens(summary['tokens'])} tokens", money(summary["cost"])]
    return " · ".join(parts)


def scorers_table(experiment: dict) -> str:
    headers = ("SCORER", "N", "MEAN [95% INTERVAL]", "PASS", "THRESHOLD")
    rows = [
        (
            s["name"],
            s["n"],
            interval(s["mean"], s["ci_low"], s["ci_high"]),
            percent(s["pass_rate"]),
            f"{s['threshold']:.2f}",
        )
        for s in experiment["summary"]["scorers"]
    ]
    return table(headers, rows, right={1, 3, 4})


def comparison_table(comparison: dict) -> str:
    """Per scorer B against A: wins, losses and ties, both means, the difference with its
    interval and whether it is larger than its noise; then the versions that differ."""
    headers = ("SCORER", "WINS", "LOSSES", "TIES", "MEAN A", "MEAN B", "B − A [95%]", "SIGNIFICANT")
    rows = [
        (
            s["name"],
            s["wins"],
            s["losses"],
            s["ties"],
            _score(s["mean_a"]),
            _score(s["mean_b"]),
            interval(s["diff"], s["diff_low"], s["diff_high"]),
            "yes" if s["significant"] else "no",
        )
        for s in comparison["scorers"]
    ]
    a, b = comparison["a"], comparison["b"]
    lines = [f"A: experiment {a['id']} {a['name']}", f"B: experiment {b['id']} {b['name']}", ""]
    lines.append(table(headers, rows, right={1, 2, 3, 4, 5}) if rows else "No scorers.")
    for change in comparison["versions"]:
        old = "current" if change["a"] is None else f"v{change['a']}"
        new = "current" if change["b"] is None else f"v{change['b']}"
        lines.append(f"{change['agent']}: {old} in A, {new} in B")
    return "\n".join(lines)


class ProgressLine:
    """A line rewritten in place on a terminal; elsewhere, a new line for each change."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        self.stream.write(f"\r\x1b[K{text}" if self.tty else f"{text}\n")
        self.stream.flush()
        self.last = text

    def end(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
