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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TEST_API_KEY = "sk-test-not-a-real-key"
# Every stack started in this test process and not yet stopped.
_LIVE: list[Stack] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_of_tests() -> str:
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
    worker_names: dict[int, str] = field(default_factory=dict)
    # Workers of other stacks stopped while this one runs alone (start_stack exclusive=True).
    paused: list[tuple[Stack, list[str]]] = field(default_factory=list)
    started_workers: int = 0

    @property
    def production(self) -> bool:
        return bool(self.env.get("REDIS_URL"))

    def simulator_stats(self) -> dict:
        return httpx.get(f"{self.simulator_url}/stats", timeout=5).json()

    def reset_simulator(self) -> None:
        httpx.post(f"{self.simulator_url}/stats/reset", timeout=5)

    def worker_log(self, proc: subprocess.Popen) -> Path:
        return self.logs / f"{self.worker_names[proc.pid]}.log"

    def live_workers(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    def start_worker(self, name: str | None = None) -> subprocess.Popen:
        self.started_workers += 1
        name = name or f"worker{self.started_workers}"
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
        self.procs.append(proc)
        _wait_for(lambda: "ready." in log.read_text(), f"worker {name}", log, proc)
        self.workers.append(proc)
        self.worker_names[proc.pid] = name
        return proc

    def kill_worker(self, proc: subprocess.Popen | None = None) -> subprocess.Popen:
        """SIGKILL a worker (the first live one by default): no cleanup, no ack, no release."""
        proc = proc or self.live_workers()[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc

    def pause_workers(self) -> list[str]:
        """Stop this stack's workers gracefully; return their names for resume_workers()."""
        names = [self.worker_names[w.pid] for w in self.live_workers()]
        for proc in self.live_workers():
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return names

    def resume_workers(self, names: Iterable[str]) -> None:
        for name in names:
            self.start_worker(name)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self in _LIVE:
            _LIVE.remove(self)
        while self.paused:
            other, names = self.paused.pop()
            if other in _LIVE:
                other.resume_workers(names)


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


def start_stack(
    logs: Path,
    *,
    latency_ms: int = 20,
    workers: int = 1,
    simulator_args: Sequence[str] = (),
    exclusive: bool = False,
    **env_extra: str,
) -> Stack:
    """Start the simulator, the web server and (production mode) `workers` Celery workers.

    `simulator_args` are extra `llm_simulator` flags (faults: `--error-rate 0.2` ...);
    `env_extra` overrides settings of the stack's processes (`LLM_TIMEOUT_S="3"` ...).
    `exclusive` stops the workers of every other live stack of this test process until this
    one stops: they share the database and the broker, so their workers and reconcilers
    would otherwise take this stack's jobs to their own simulator.
    """
    logs.mkdir(parents=True, exist_ok=True)
    sim_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_tests(),
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
    if exclusive:
        for other in list(_LIVE):
            stack.paused.append((other, other.pause_workers()))
    _LIVE.append(stack)
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
                *simulator_args,
            ],
            env,
            sim_log,
        )
        stack.procs.append(sim)
        _wait_for(lambda: "listening" in sim_log.read_text(), "simulator", sim_log, sim)
        web_log = logs / "web.log"
        if stack.production:
            _purge(env)  # messages left by an earlier, interrupted run
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
            for _ in range(workers):
                stack.start_worker()
    except Exception:
        stack.stop()
        raise
    return stack


def _purge(env: dict) -> None:
    broker = env.get("CELERY_BROKER_URL", "")
    if not broker.startswith("amqp"):
        from orchestrator_site.celery import app

        app.control.purge()
        return
    # Not through this process's Celery app: it would declare the queue with its own (Redis)
    # settings, which RabbitMQ then refuses to the workers' quorum queue.
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(broker) as conn:
        try:
            conn.default_channel.queue_purge("celery")
        except NotFound:  # no queue yet: the first worker declares it
            pass


def wait_until_terminal(job_ids: Iterable[int], timeout: float = 60, poll_s: float = 0.2):
    """Wait until every one of these jobs is completed, failed or cancelled; return them.

    The caller must be allowed to use the database (a django_db test, or inside
    `django_db_blocker.unblock()`). Raises AssertionError naming the jobs still open.
    """
    from agents.models import JOB_TERMINAL, Job

    ids = list(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        jobs = list(Job.objects.filter(pk__in=ids).order_by("pk"))
        open_jobs = [j for j in jobs if j.status not in JOB_TERMINAL]
        if len(jobs) == len(ids) and not open_jobs:
            return jobs
        if time.monotonic() > deadline:
            found = {j.pk for j in jobs}
            missing = [i for i in ids if i not in found]
            raise AssertionError(
                f"not terminal after {timeout} s: "
                + ", ".join(f"#{j.pk} {j.status} ({j.status_reason or j.error})" for j in open_jobs)
                + (f"; missing {missing}" if missing else "")
            )
        time.sleep(poll_s)


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


def submit(
    client: httpx.Client,
    title: str,
    description: str = "Build a tiny URL shortener and review it.",
    **extra: str,
) -> None:
    """Submit a job through the board's form, as a logged-in browser would."""
    data = {
        "title": title,
        "description": description,
        "priority": "5",
        "csrfmiddlewaretoken": client.cookies["csrftoken"],
        **extra,
    }
    assert client.post("/jobs/submit/", data=data).status_code == 200


def post(client: httpx.Client, url: str) -> int:
    """POST an action with the CSRF token; the status code of the page it lands on."""
    return client.post(url, data={"csrfmiddlewaretoken": client.cookies["csrftoken"]}).status_code


def wait_until(predicate, what: str, timeout: float = 60, poll_s: float = 0.1):
    """Bounded polling: the predicate's first truthy value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finished(title: str):
    """The newest job titled `title`, once it has ended (a test may submit a title twice)."""
    from agents.models import JOB_TERMINAL, Job

    return wait_until(
        lambda: Job.objects.filter(title=title, status__in=JOB_TERMINAL).order_by("-pk").first(),
        f"job {title!r} to end",
    )


def check_exactly_once(ids: list[int]) -> dict[str, object]:
    """No subtask, plan or synthesis of the jobs `ids` has more than one successful call, and
    each completed subtask has one; return figures."""
    from collections import Counter

    from django.db.models import Count

    from agents.models import LLMCall, Subtask, SubtaskStatus

    calls = LLMCall.objects.filter(job_id__in=ids)
    twice = list(
        calls.filter(purpose=LLMCall.Purpose.SUBTASK, error="")
        .values("subtask")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not twice, f"subtasks with more than one successful call: {twice}"
    for purpose in (LLMCall.Purpose.PLAN, LLMCall.Purpose.SYNTHESIS):
        again = list(
            calls.filter(purpose=purpose, error="")
            .values("job")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
        )
        assert not again, f"jobs with more than one successful {purpose} call: {again}"
    for sub in Subtask.objects.filter(job_id__in=ids, status=SubtaskStatus.COMPLETED):
        assert sub.calls.filter(error="").count() == 1, f"{sub} completed without one ok call"
    return {
        "calls": calls.count(),
        "failed calls": calls.exclude(error="").count(),
        "subtasks": dict(
            Counter(Subtask.objects.filter(job_id__in=ids).values_list("status", flat=True))
        ),
    }
