"""The provider every system is measured against: `manage.py llm_simulator` over HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(Path(sys.executable).parent / "python")
API_KEY = "sk-bench"
# The workload's plan: 3 subtasks, coding after research, review on its own.
PLAN_SHAPE = "one-dependency"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A process of the run, from the project's root, its output in `log`."""
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def wait_for(ready, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    sys.exit(f"{what} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(procs: list[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM, then wait (a warm shutdown writes the counters); SIGKILL what hangs."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Simulator:
    proc: subprocess.Popen
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/stats", timeout=10).json()

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/stats/reset", timeout=10)

    def stop(self) -> None:
        stop([self.proc])


def start(latency_ms: int, env: dict, log: Path) -> Simulator:
    port = free_port()
    cmd = [
        PYTHON,
        "manage.py",
        "llm_simulator",
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
        "--plan-shape",
        PLAN_SHAPE,
    ]
    proc = spawn(cmd, env, log)
    sim = Simulator(proc, port)
    wait_for(lambda: "listening" in log.read_text(), "llm_simulator", proc, log)
    return sim
