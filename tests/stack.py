"""Start Baton as real processes for end-to-end tests: simulator, Daphne and workers.

Production mode (REDIS_URL set): Daphne and Celery workers as separate processes on the
real broker. Without REDIS_URL: `manage.py runstandalone`. Both use the test database
that pytest-django created, and the LLM simulator over HTTP.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TEST_API_KEY = "sk-test-not-a-real-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = db.get("USER") or ""
    auth = f"{user}:{db.get('PASSWORD')}@" if db.get("PASSWORD") else (f"{user}@" if user else "")
    return (
        f"postgresql://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


@dataclass
class Stack:
    base_url: str
    simulator_url: str
    logs: Path
    env: dict
    procs: list[subprocess.Popen] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def production(self) -> bool:
        return bool(self.env.get("REDIS_URL"))

    def simulator_stats(self) -> dict:
        return httpx.get(f"{self.simulator_url}/stats", timeout=5).json()

    def reset_simulator(self) -> None:
        httpx.post(f"{self.simulator_url}/stats/reset", timeout=5)

    def start_worker(self, name: str) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        cmd = [
            str(VENV_BIN / "celery"),
            "-A",
            "orchestrator_site",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "16",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
            "-n",
            f"{name}@%h",
        ]
        proc = _spawn(cmd, self.env, log)
        _wait_for(lambda: "ready." in log.read_text(), f"worker {name}", log, proc)
        self.workers.append(proc)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )


def _wait_for(ready, what: str, log: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def start_stack(logs: Path, *, latency_ms: int = 20, workers: int = 1, **env_extra: str) -> Stack:
    logs.mkdir(parents=True, exist_ok=True)
    sim_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LLM_BASE_URL": f"http://127.0.0.1:{sim_port}/v1",
        "LLM_API_KEY": TEST_API_KEY,
        "RECONCILE_EVERY_S": "2",
        "PYTHONUNBUFFERED": "1",
        **env_extra,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    stack = Stack(
        base_url=f"http://127.0.0.1:{web_port}",
        simulator_url=f"http://127.0.0.1:{sim_port}",
        logs=logs,
        env=env,
    )
    try:
        python = str(VENV_BIN / "python")
        sim_log = logs / "simulator.log"
        sim = _spawn(
            [
                python,
                "manage.py",
                "llm_simulator",
                "--port",
                str(sim_port),
                "--latency-ms",
                str(latency_ms),
            ],
            env,
            sim_log,
        )
        stack.procs.append(sim)
        _wait_for(lambda: "listening" in sim_log.read_text(), "simulator", sim_log, sim)
        web_log = logs / "web.log"
        if stack.production:
            from orchestrator_site.celery import app

            app.control.purge()  # messages left by an earlier, interrupted run
            web_cmd = [
                str(VENV_BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(web_port),
                "orchestrator_site.asgi:application",
            ]
        else:
            web_cmd = [python, "manage.py", "runstandalone", "--port", str(web_port)]
        web = _spawn(web_cmd, env, web_log)
        stack.procs.append(web)
        _wait_for(
            lambda: httpx.get(f"{stack.base_url}/login/", timeout=2).status_code == 200,
            "web server",
            web_log,
            web,
        )
        if stack.production:
            for n in range(workers):
                stack.start_worker(f"worker{n + 1}")
    except Exception:
        stack.stop()
        raise
    return stack


def login(base_url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=True, timeout=10)
    client.get("/login/")
    response = client.post(
        "/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    assert re.search(r"Log out", response.text), "login failed"
    return client
