"""The peers: the same workload, one process each, on the same simulator.

The asyncio peer runs on the project's interpreter (the httpx Baton uses); the LangGraph peer
in its own virtualenv, var/bench/peers-venv, built here from bench/peers/requirements.txt
(the project's .venv never gets LangGraph).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import baton, simulator

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / "bench" / "peers"
VENV = ROOT / "var" / "bench" / "peers-venv"
REQUIREMENTS = PEERS_DIR / "requirements.txt"
# Baton's PLAN_TEMPERATURE (agents/steps.py); the simulator ignores it either way.
PLAN_TEMPERATURE = 0.3
PEERS = {"asyncio": "asyncio_peer.py", "langgraph": "langgraph_peer.py"}


def ensure_venv(log: Path) -> str:
    """The LangGraph peer's interpreter, (re)installing when the requirements changed."""
    python, stamp = VENV / "bin" / "python", VENV / ".requirements"
    wanted = REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"installing the LangGraph peer's virtualenv in {VENV.relative_to(ROOT)} …")
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        for args in (["--upgrade", "pip"], ["-r", str(REQUIREMENTS)]):
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", *args],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        frozen = subprocess.run(
            [str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True
        ).stdout
    (VENV / "freeze.txt").write_text(frozen)
    stamp.write_text(wanted)
    return str(python)


def write_workload(jobs: int, path: Path) -> dict:
    """Each job's planning messages exactly as Baton builds them, and the default team.

    Needs Django configured (settings and the agents app), not the database.
    """
    from django.conf import settings

    from agents import planning, team
    from agents.models import Agent

    agents = sorted((Agent(**spec) for spec in team.DEFAULT_TEAM), key=lambda a: a.name)
    roster = [(a.slug, a.specialties) for a in agents if not a.is_orchestrator]
    workload = {
        "plan_temperature": PLAN_TEMPERATURE,
        "dependency_chars": settings.PROMPT_DEPENDENCY_CHARS,
        "agents": [
            {
                "slug": a.slug,
                "model": a.model,
                "temperature": a.temperature,
                "max_tokens": a.max_tokens,
                "specialties": a.specialties,
                "orchestrator": a.is_orchestrator,
                "system_prompt": a.system_prompt
                or f"You are {a.name}, a specialist in {', '.join(a.specialties)}.",
            }
            for a in agents
        ],
        "jobs": [],
    }
    for i in range(jobs):
        title, description = baton.job_text(i)
        messages = planning.decomposition_messages(
            title, description, roster, settings.PLAN_MAX_SUBTASKS
        )
        workload["jobs"].append(
            {"title": title, "description": description, "plan_messages": messages}
        )
    path.write_text(json.dumps(workload))
    return workload


def run(
    peer: str, python: str, *, latency_ms: int, cap: int, env: dict, logs: Path, workload: Path
) -> dict:
    logs.mkdir(parents=True, exist_ok=True)
    sim = simulator.start(latency_ms, env, logs / "simulator.log")
    out = logs / "result.json"
    out.unlink(missing_ok=True)
    try:
        cmd = [
            python,
            str(PEERS_DIR / PEERS[peer]),
            "--workload",
            str(workload),
            "--base-url",
            sim.base_url,
            "--api-key",
            simulator.API_KEY,
            "--cap",
            str(cap),
            "--out",
            str(out),
            "--work-dir",
            str(logs),
            "--provider-pid",
            str(sim.proc.pid),
        ]
        with (logs / "peer.log").open("w") as log:
            done = subprocess.run(cmd, cwd=logs, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode or not out.exists():
            sys.exit(f"{peer} peer failed:\n{(logs / 'peer.log').read_text()[-3000:]}")
        stats = sim.stats()
    finally:
        sim.stop()
    result = json.loads(out.read_text())
    return {
        **result,
        "system": peer,
        "latency_ms": latency_ms,
        "own_calls": result["calls"],
        "calls": stats["requests"],
        "peak_in_flight": stats["peak_in_flight"],
    }
