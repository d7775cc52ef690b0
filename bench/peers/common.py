"""What both peers share: the workload file, the prompts and the plan parser.

The workload (written by bench/peer_runs.py from Baton's own code) holds each job's planning
messages exactly as Baton sends them, and the team. The subtask and synthesis prompts below
follow Baton's steps (agents/steps.py), so the provider sees the same work (each Baton run
checks it on one job, see bench/baton.py). This
module runs in the peers' virtualenv: standard library only (and bench/procstat.py), nothing
from Django or Baton.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))
from bench import procstat  # noqa: E402  (standard library only)

SYNTHESIS_SYSTEM = (
    "You compose the final answer to a job from your team's results. "
    "Be complete and concise; keep what matters from each result."
)
FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workload", type=Path, required=True)
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible, ending in /v1")
    parser.add_argument("--api-key", default="sk-bench")
    parser.add_argument("--cap", type=int, default=10, help="LLM calls in flight at most")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, default=Path("."))
    parser.add_argument("--provider-pid", type=int, help="the simulator, to report its CPU")
    return parser.parse_args()


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def parse_plan(text: str) -> list[dict]:
    """The subtasks of a plan answer: id, type, assign_to, description, depends_on."""
    fenced = FENCE_RE.search(text)
    candidate = fenced.group(1) if fenced else text
    data = json.JSONDecoder().raw_decode(candidate[candidate.index("{") :])[0]
    plan = []
    for item in data["subtasks"]:
        payload = item.get("payload") or {}
        plan.append(
            {
                "id": str(item["id"]),
                "type": item["type"],
                "assign_to": item.get("assign_to") or "",
                "description": payload.get("description") or item.get("description", ""),
                "depends_on": [str(d) for d in item.get("depends_on") or []],
            }
        )
    return plan


def orchestrator(workload: dict) -> dict:
    return next(a for a in workload["agents"] if a["orchestrator"])


def agent_for(workload: dict, subtask: dict) -> dict:
    """The agent the plan names, else one whose specialties hold the subtask's type."""
    specialists = [a for a in workload["agents"] if not a["orchestrator"]]
    for agent in specialists:
        if agent["slug"] == subtask["assign_to"]:
            return agent
    return next((a for a in specialists if subtask["type"] in a["specialties"]), specialists[0])


def subtask_messages(
    workload: dict, job: dict, subtask: dict, agent: dict, upstream: list[tuple[dict, str]]
) -> list[dict]:
    """Baton's subtask prompt: the job, the subtask, and what its dependencies found."""
    limit = workload["dependency_chars"]
    parts = [
        f"Job: {job['title']}\n\n{job['description']}",
        f"Your subtask ({subtask['type']}): {subtask['description']}",
    ]
    if upstream:
        found = [
            f"Result of {dep['id']} ({dep['type']}):\n{text[:limit]}" for dep, text in upstream
        ]
        parts.append("What your teammates found:\n\n" + "\n\n".join(found))
    return [
        {"role": "system", "content": agent["system_prompt"]},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def synthesis_messages(workload: dict, job: dict, results: list[tuple[dict, str]]) -> list[dict]:
    limit = workload["dependency_chars"]
    body = "\n\n".join(f"## {s['id']} ({s['type']})\n{text[:limit]}" for s, text in results)
    return [
        {"role": "system", "content": SYNTHESIS_SYSTEM},
        {"role": "user", "content": f"Job: {job['title']}\n\n{job['description']}\n\n{body}"},
    ]


class Meter:
    """Wall and CPU time of the measured run only: this process (and its children), the
    provider's process when its pid is known, and the machine's busy time."""

    def __init__(self, provider_pid: int | None = None) -> None:
        self.provider_pid = provider_pid

    def _read(self) -> dict[str, float]:
        t = os.times()
        return {
            "peer": t.user + t.system + t.children_user + t.children_system,
            "simulator": procstat.cpu_s(self.provider_pid) if self.provider_pid else 0.0,
            "machine": procstat.machine_busy_s(),
        }

    def __enter__(self) -> Meter:
        self._start, self._wall = self._read(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        end, self.wall_s = self._read(), time.monotonic() - self._wall
        self.cpu_s = {name: end[name] - self._start[name] for name in end}


def report(out: Path, meter: Meter, jobs: int, completed: int, calls: int, **extra) -> None:
    out.write_text(
        json.dumps(
            {
                "jobs": jobs,
                "completed": completed,
                "calls": calls,
                "wall_s": meter.wall_s,
                "cpu_s": meter.cpu_s,
                **extra,
            }
        )
    )
