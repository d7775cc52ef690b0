"""Where a chaos run spends its time: per second from the first submission, the provider
calls started (the simulator's request counter, sampled), the calls in flight at the provider
on average (against the cap: idle slots are lost time), the answers Baton recorded (LLMCall
rows, by the second they were saved) and the jobs that ended; the faults marked on their
second. A killed worker's call is started and answered but never recorded."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

SAMPLE_S = 0.1


class Sampler:
    """Samples the simulator's counters every SAMPLE_S in its own thread."""

    def __init__(self, sim, t0: float) -> None:
        self.sim, self.t0 = sim, t0
        self.samples: list[tuple[float, int, int]] = []  # (s from t0, requests, in flight)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                stats = self.sim.stats()
            except Exception:  # the simulator is stopping
                return
            self.samples.append((time.monotonic() - self.t0, stats["requests"], stats["in_flight"]))
            self.done.wait(SAMPLE_S)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def seconds(sampler: Sampler, started_wall: float) -> list[dict]:
    """One row per second from the first submission to the last job's end."""
    from agents.models import Job, LLMCall

    recorded: dict[int, int] = defaultdict(int)
    ok = LLMCall.objects.filter(http_status=200, error="").values_list("created_at", flat=True)
    for at in ok:
        recorded[int(at.timestamp() - started_wall)] += 1
    ended: dict[int, int] = defaultdict(int)
    for at in Job.objects.exclude(finished_at=None).values_list("finished_at", flat=True):
        ended[int(at.timestamp() - started_wall)] += 1
    by_second: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t, requests, in_flight in sampler.samples:
        by_second[int(t)].append((requests, in_flight))
    last = max([*ended, *recorded, 0])
    rows, before = [], 0
    for s in range(last + 1):
        samples = by_second.get(s, [])
        requests = samples[-1][0] if samples else before
        in_flight = sum(n for _, n in samples) / len(samples) if samples else None
        rows.append(
            {
                "s": s,
                "started": requests - before,
                "in_flight": in_flight,
                "recorded": recorded.get(s, 0),
                "ended": ended.get(s, 0),
            }
        )
        before = requests
    return rows


def _marks(faults: list, s: int) -> str:
    return ", ".join(name for name, at in faults if int(at) == s)


def table(rows: list[dict], faults: list, cap: int) -> str:
    """The timeline as a Markdown table, faults on their second."""
    lines = [
        f"| s | calls started | in flight (avg, cap {cap}) | answers recorded | jobs ended "
        "| fault |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        flight = "–" if r["in_flight"] is None else f"{r['in_flight']:.1f}"
        lines.append(
            f"| {r['s']} | {r['started']} | {flight} | {r['recorded']} | {r['ended']} "
            f"| {_marks(faults, r['s'])} |"
        )
    return "\n".join(lines)


def lost_seconds(rows: list[dict], cap: int) -> float:
    """Slot-seconds left idle, in seconds of the whole cap: Σ (cap − in flight) / cap."""
    return sum(cap - r["in_flight"] for r in rows if r["in_flight"] is not None) / cap


def after_faults(rows: list[dict], faults: list, cap: int, span: int = 3) -> list[str]:
    """Per fault: the mean in flight over the `span` seconds from it, against the cap."""
    out = []
    for name, at in faults:
        window = [
            r["in_flight"]
            for r in rows
            if int(at) <= r["s"] < int(at) + span and r["in_flight"] is not None
        ]
        if window:
            out.append(f"{name}@{at:g}s: {sum(window) / len(window):.1f}/{cap}")
    return out
