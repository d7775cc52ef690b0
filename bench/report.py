"""Figures from the runs' raw results: the summary table, the details, the targets, and the
record in bench/RESULTS.md."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
HISTORY = "## History"
REFERENCE = "langgraph"
BATON_CPU = ("workers", "web", "submit", "postgres", "redis")
NOT_PROCESSES = ("machine", "window_s", "postgres_others")
SOURCES = ("workers", "web", "submit")


def label(r: dict) -> str:
    if r["system"] == "baton":
        if r.get("pages"):
            return f"Baton, {r['pages']} job pages (streaming)"
        return f"Baton, {r['watchers']} boards" if r["watchers"] else "Baton, nobody watching"
    return {"asyncio": "asyncio peer (one process)", "langgraph": "LangGraph + SQLite"}[r["system"]]


def key(r: dict) -> tuple[str, int, int]:
    return r["system"], r.get("watchers", 0), r.get("pages", 0)


def derive(r: dict, cap: int) -> dict:
    """Per-call figures from a run's raw counts."""
    calls, wall, cpu = r["calls"] or 1, r["wall_s"], r["cpu_s"]
    own = sum(cpu.get(g, 0) for g in BATON_CPU) if r["system"] == "baton" else cpu["peer"]
    ideal = r["calls"] * r["latency_ms"] / 1000 / cap
    # Busy time of the machine not spent by anything measured: other people's work.
    measured = sum(v for k, v in cpu.items() if k not in NOT_PROCESSES)
    per_call = {
        "efficiency": ideal / wall if ideal and wall else None,
        "calls_per_s": r["calls"] / wall if wall else None,
        "ideal_s": ideal,
        "cpu_ms": own * 1000 / calls,
        "simulator_cpu_ms": cpu.get("simulator", 0) * 1000 / calls,
        "machine_cpu_ms": cpu.get("machine", 0) * 1000 / calls,
        "other_cpu_ms": (cpu.get("machine", 0) - measured) * 1000 / calls,
    }
    for kind in ("sql", "tx_commands", "commits", "broker_msgs", "group_sends"):
        if kind in r:
            per_call[f"{kind}_per_call"] = r[kind] / calls
    if "sql" in r and "tx_commands" in r:
        per_call["round_trips_per_call"] = (r["sql"] + r["tx_commands"]) / calls
    if r["system"] == "baton":
        for group in ("workers", "postgres", "redis"):
            per_call[f"{group}_cpu_ms"] = cpu.get(group, 0) * 1000 / calls
    return {**r, **per_call}


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if value and reference else "–"


def _board(runs: list[dict]) -> str:
    cells = [
        f"{_fmt(r['board']['p50_ms'], 0)}/{_fmt(r['board']['p95_ms'], 0)} @{r['latency_ms']} ms"
        for r in runs
        if r.get("board")
    ]
    return " · ".join(cells) or "–"


def summary_table(results: list[dict]) -> str:
    systems: dict[tuple, dict[int, dict]] = {}
    for r in results:
        systems.setdefault(key(r), {})[r["latency_ms"]] = r
    reference = systems.get((REFERENCE, 0, 0), {})
    ref_eff = reference.get(200, {}).get("efficiency")
    ref_cps = reference.get(0, {}).get("calls_per_s")
    lines = [
        "| system | efficiency @200ms | calls/s @0ms | × LangGraph+SQLite (efficiency · calls/s)"
        " | CPU ms/call (0 ms) | SQL/call (0 ms) | round trips/call (0 ms)"
        " | broker msgs/call (0 ms) | board latency p50/p95 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for runs in systems.values():
        slow, fast = runs.get(200, {}), runs.get(0, {})
        either = fast or slow
        eff, cps = slow.get("efficiency"), fast.get("calls_per_s")
        lines.append(
            f"| {label(either)} | {_fmt(eff, 3)} | {_fmt(cps)} "
            f"| {_ratio(eff, ref_eff)} · {_ratio(cps, ref_cps)} "
            f"| {_fmt(either.get('cpu_ms'))} | {_fmt(either.get('sql_per_call'))} "
            f"| {_fmt(either.get('round_trips_per_call'))} "
            f"| {_fmt(either.get('broker_msgs_per_call'), 2)} | {_board(list(runs.values()))} |"
        )
    return "\n".join(lines)


def _per_core(ms: float | None) -> str:
    return f"{1000 / ms:.0f}" if ms else "–"


def scale_table(results: list[dict]) -> str:
    """Baton's runs at 0 ms, per call: what each part of the system spends, and so how many
    calls/s one core of each carries (PostgreSQL's is the ceiling of one database)."""
    runs = [r for r in results if r["system"] == "baton" and r["latency_ms"] == 0]
    if not runs:
        return ""
    lines = [
        "| run (0 ms) | worker CPU ms/call | PostgreSQL CPU ms/call | Redis CPU ms/call"
        " | SQL statements/call | round trips/call | calls/s per core: workers · PostgreSQL"
        " · Redis |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        cores = " · ".join(
            _per_core(r.get(f"{g}_cpu_ms")) for g in ("workers", "postgres", "redis")
        )
        lines.append(
            f"| {label(r)} | {_fmt(r.get('workers_cpu_ms'))} | {_fmt(r.get('postgres_cpu_ms'))} "
            f"| {_fmt(r.get('redis_cpu_ms'))} | {_fmt(r.get('sql_per_call'))} "
            f"| {_fmt(r.get('round_trips_per_call'))} | {cores} |"
        )
    return "\n".join(lines)


def _per_call(r: dict, value: float, digits: int = 1) -> str:
    return f"{value / (r['calls'] or 1):.{digits}f}"


def _cpu_cell(r: dict) -> str:
    if r["system"] != "baton":
        return f"{r['cpu_ms']:.1f}"
    parts = " + ".join(_per_call(r, r["cpu_s"].get(g, 0) * 1000) for g in BATON_CPU)
    return f"{r['cpu_ms']:.1f} = {parts}"


def _sql_cell(r: dict) -> str:
    by = r["counts_by_source"]
    parts = " + ".join(_per_call(r, by[source].get("sql", 0)) for source in SOURCES)
    return f"{r['sql_per_call']:.1f} = {parts}"


def _board_cell(r: dict) -> str:
    board = r["board"]
    return f"{board['messages']} · {board['missed']} · {_fmt(board['max_ms'], 0)}"


def _pages_cell(r: dict) -> str:
    pages = r["job_pages"]
    return f"{pages['opened']} · {pages['fragments']} · {pages['streamed']}"


DETAILS = [
    ("run", lambda r: f"{label(r)} @{r['latency_ms']} ms"),
    ("jobs done", lambda r: f"{r['completed']}/{r['jobs']}"),
    ("calls", lambda r: str(r["calls"])),
    ("wall s", lambda r: _fmt(r["wall_s"], 2)),
    ("ideal s", lambda r: _fmt(r["ideal_s"], 1)),
    ("peak in flight", lambda r: str(r["peak_in_flight"])),
    ("CPU ms/call = workers + web + submit + PostgreSQL + Redis", _cpu_cell),
    ("simulator CPU ms/call", lambda r: f"{r['simulator_cpu_ms']:.1f}"),
    (
        "machine busy ms/call (not measured: other load)",
        lambda r: f"{r['machine_cpu_ms']:.1f} ({r['other_cpu_ms']:.1f})",
    ),
    ("SQL/call = workers + web + submit", _sql_cell),
    ("commits/call", lambda r: _per_call(r, r["commits"])),
    ("BEGIN/COMMIT/… commands/call", lambda r: _per_call(r, r["tx_commands"])),
    ("DB connections opened", lambda r: str(r["connects"])),
    (
        "broker msgs · group sends /call",
        lambda r: f"{_per_call(r, r['broker_msgs'], 2)} · {_per_call(r, r['group_sends'], 2)}",
    ),
    ("board msgs · missed · max ms", _board_cell),
    ("job pages opened · fragments · streamed texts", _pages_cell),
]


def details_table(results: list[dict]) -> str:
    lines = [
        "| " + " | ".join(name for name, _ in DETAILS) + " |",
        "| " + " | ".join("---" for _ in DETAILS) + " |",
    ]
    for r in results:
        cells = []
        for _, cell in DETAILS:
            try:
                cells.append(cell(r))
            except (KeyError, TypeError):  # a figure this system does not have
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: list[dict], board_p95_ms: float = 250) -> list[tuple[str, bool | None]]:
    """The targets, each with True/False, or None when the run did not measure it."""
    find = {(key(r), r["latency_ms"]): r for r in results}

    def value(system: tuple, latency: int, field: str) -> float | None:
        return find.get((system, latency), {}).get(field)

    watched = next((k for (k, _) in find if k[0] == "baton" and k[1]), ("baton", 10, 0))
    paged = next((k for (k, _) in find if k[0] == "baton" and k[2]), ("baton", 0, 10))
    nobody = ("baton", 0, 0)
    ref_cps = value((REFERENCE, 0, 0), 0, "calls_per_s")
    checks = []
    for system, share in ((nobody, 1.0), (watched, 0.9)):
        cps = value(system, 0, "calls_per_s")
        name = label({"system": "baton", "watchers": system[1]})
        text = f"0 ms: {name} calls/s ≥ {share:.1f}× LangGraph+SQLite's ({_ratio(cps, ref_cps)})"
        checks.append((text, None if not (cps and ref_cps) else cps >= share * ref_cps))
    eff, ref_eff = value(watched, 200, "efficiency"), value((REFERENCE, 0, 0), 200, "efficiency")
    name = label({"system": "baton", "watchers": watched[1]})
    text = f"200 ms: {name} efficiency ≥ LangGraph+SQLite's ({_fmt(eff, 3)} vs {_fmt(ref_eff, 3)})"
    checks.append((text, None if not (eff and ref_eff) else eff >= ref_eff))
    cps, alone = value(paged, 0, "calls_per_s"), value(nobody, 0, "calls_per_s")
    text = (
        f"0 ms: {label({'system': 'baton', 'pages': paged[2]})} calls/s ≥ 0.85× nobody "
        f"watching's ({_ratio(cps, alone)})"
    )
    checks.append((text, None if not (cps and alone) else cps >= 0.85 * alone))
    trips = value(nobody, 0, "round_trips_per_call")
    text = f"0 ms: Baton, nobody watching, SQL round trips per call ≤ 6 ({_fmt(trips)})"
    checks.append((text, None if trips is None else trips <= 6))
    for r in results:
        if r.get("board"):
            p95 = r["board"]["p95_ms"]
            ok = p95 is not None and p95 <= board_p95_ms and not r["board"]["missed"]
            text = (
                f"board p95 ≤ {board_p95_ms:.0f} ms @{r['latency_ms']} ms "
                f"({_fmt(p95, 0)} ms, {r['board']['missed']} missed)"
            )
            checks.append((text, ok))
    return checks


def shared_machine_note(results: list[dict], share: float = 0.2) -> str:
    """A warning when work outside the run took a good share of the machine's CPU."""
    busy = [
        (label(r), r["latency_ms"], r["other_cpu_ms"] / r["machine_cpu_ms"])
        for r in results
        if r["machine_cpu_ms"] and r["other_cpu_ms"] > share * r["machine_cpu_ms"]
    ]
    if not busy:
        return ""
    runs = ", ".join(f"{name} @{latency} ms {part:.0%}" for name, latency, part in busy)
    return (
        f"Shared machine: other processes took more than {share:.0%} of the busy CPU during "
        f"some runs ({runs}); those runs' figures are pessimistic, and PostgreSQL's may "
        "include other databases' short-lived backends."
    )


def targets_text(checks: list[tuple[str, bool | None]]) -> str:
    mark = {True: "met", False: "**not met**", None: "not measured"}
    return "\n".join(f"- {text}: {mark[ok]}" for text, ok in checks)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{len(os.sched_getaffinity(0))} × {model}"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    short = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    changed = [path for path in changed if path != "bench/RESULTS.md"]
    if not changed:
        return short
    listed = ", ".join(changed) if len(changed) <= 10 else f"{len(changed)} files"
    return f"{short} + uncommitted changes ({listed})"


def heading(jobs: int) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"### {now} · commit {commit()} · {machine()} · {jobs} jobs"


def section(results: list[dict], jobs: int, latencies: list[int], cap: int) -> str:
    """A run's report: heading, summary, targets, and the details folded."""
    parts = [
        heading(jobs),
        f"{jobs} jobs × 5 calls, cap {cap}, provider latencies "
        + " and ".join(f"{v} ms" for v in latencies)
        + ".",
        summary_table(results),
        scale_table(results),
        "Targets:\n\n" + targets_text(targets(results)),
        shared_machine_note(results),
        "<details><summary>Details per run</summary>\n\n"
        + details_table(results)
        + "\n\n</details>",
    ]
    return "\n\n".join(part for part in parts if part)


def record(section: str) -> None:
    """Add a run's section to RESULTS.md, after the earlier runs, before the history."""
    text = RESULTS.read_text()
    head, sep, history = text.partition(HISTORY)
    RESULTS.write_text(head.rstrip("\n") + "\n\n" + section.strip("\n") + "\n\n" + sep + history)
