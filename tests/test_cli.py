"""The `baton` command: its output and exit codes against the API in this process, its event
stream handling against a scripted server, and the installed executable against a stack."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import httpx
import pytest
from django.test import Client

from agents import team
from agents.models import ApiToken, Job, JobStatus
from baton_cli import follow, output
from baton_cli.main import main

from .api_support import make_job, planned_job
from .stack import VENV_BIN, free_port, wait_until


class DjangoTransport(httpx.BaseTransport):
    """Hands each request to the Django app in this process, through the test client.

    It answers the event stream's paths with the API's 404, as a Baton without one would
    (a test client cannot hold an endless stream); `after_read(n)` runs after the n-th
    read of a job, so a test can move the job along while the command follows it.
    """

    def __init__(self, after_read=None) -> None:
        self.client = Client()
        self.after_read = after_read
        self.reads = 0
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        self.paths.append(f"{request.method} {path}")
        if path.endswith("/events"):
            path = "/api/v1/no-such-endpoint"
        skip = {"host", "content-length", "content-type"}
        response = self.client.generic(
            request.method,
            path,
            data=request.read(),
            content_type=request.headers.get("content-type", ""),
            headers={k: v for k, v in request.headers.items() if k.lower() not in skip},
        )
        if request.method == "GET" and path.rstrip("0123456789").endswith("/jobs/"):
            self.reads += 1
            if self.after_read:
                self.after_read(self.reads)
        return httpx.Response(
            response.status_code, headers=dict(response.items()), content=response.content
        )


@pytest.fixture
def baton(users, monkeypatch, capsys):
    """Run `baton` in process as the operator (or `user`); the exit code, stdout, stderr."""
    secrets = {name: ApiToken.objects.issue(user, "cli")[1] for name, user in users.items()}
    monkeypatch.setattr(follow, "POLL_S", 0)

    def run(*argv: str, user: str = "operator", transport=None):
        monkeypatch.setenv("BATON_TOKEN", secrets[user])
        code = main(list(argv), transport=transport or DjangoTransport())
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.mark.django_db
def test_it_submits_a_job_and_prints_its_id(baton, users):
    code, out, err = baton("submit", "--title", "Compare queues", "--description", "Celery or RQ?")
    job = Job.objects.get()
    assert (code, out, err) == (0, f"{job.pk}\n", "")
    assert (job.title, job.submitted_by, job.priority) == ("Compare queues", users["operator"], 5)


@pytest.mark.django_db
def test_it_submits_with_budgets_and_review_and_prints_json(baton):
    code, out, _ = baton(
        "submit",
        "--title=Compare queues",
        "--description=Celery or RQ for a small team?",
        "--priority=2",
        "--budget-tokens=5000",
        "--budget-cost=0.5",
        "--review",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    job = Job.objects.get()
    assert data["id"] == job.pk and data["status"] == "queued"
    assert (job.priority, job.budget_tokens, str(job.budget_cost), job.review_plan) == (
        2,
        5000,
        "0.5000",
        True,
    )


@pytest.mark.django_db
def test_values_the_server_refuses_are_a_usage_error_with_each_field(baton):
    code, out, err = baton("submit", "--title", "   ", "--description", "short")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0].startswith("error: Validation failed: ")
    assert "  title: This field is required." in lines
    assert "  description: Describe the job in at least 10 characters." in lines
    assert not Job.objects.exists()


def test_a_missing_argument_is_a_usage_error(capsys):
    assert main(["submit", "--title", "No description"]) == 2
    assert "--description" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for line in ("1  the job failed or was cancelled", "3  not authenticated", "6  server"):
        assert line in text


@pytest.mark.django_db
def test_it_lists_jobs_in_aligned_columns(baton):
    done = planned_job(JobStatus.COMPLETED, title="Haiku about the sea", total_tokens=1234)
    make_job(JobStatus.FAILED, title="Broken one")
    code, out, _ = baton("jobs")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATUS", "PRI", "DONE", "TOKENS", "COST", "CREATED", "TITLE"]
    assert len(rows) == 2 and rows[1].endswith("Haiku about the sea")
    assert "1,234" in rows[1] and "1/2" in rows[1]
    # Every row's title starts where the header's TITLE does.
    column = header.index("TITLE")
    assert [r[column:] for r in rows] == ["Broken one", "Haiku about the sea"]

    code, out, _ = baton("jobs", "--status", "completed", "--json")
    assert code == 0
    assert [j["id"] for j in json.loads(out)] == [done.pk]


@pytest.mark.django_db
def test_an_unknown_status_is_refused(baton):
    code, _, err = baton("jobs", "--status", "done")
    assert code == 2
    assert 'status: "done" is not a valid choice.' in err


@pytest.mark.django_db
def test_a_wrong_token_is_an_auth_error(baton, monkeypatch, capsys):
    monkeypatch.setenv("BATON_TOKEN", "not-a-token")
    assert main(["jobs"], transport=DjangoTransport()) == 3
    assert capsys.readouterr().err == "error: Unauthorized: This token is not valid.\n"


def test_no_token_is_an_auth_error(monkeypatch, capsys):
    monkeypatch.delenv("BATON_TOKEN", raising=False)
    assert main(["jobs"]) == 3
    assert "BATON_TOKEN" in capsys.readouterr().err


@pytest.mark.django_db
def test_a_viewer_may_list_but_not_cancel(baton):
    job = make_job(JobStatus.WORKING)
    assert baton("jobs", user="viewer")[0] == 0
    code, _, err = baton("cancel", str(job.pk), user="viewer")
    assert code == 3 and err.startswith("error: Forbidden: ")
    assert Job.objects.get().status == JobStatus.WORKING


@pytest.mark.django_db
def test_an_unknown_job_is_not_found(baton):
    for command in ("watch", "cancel", "retry"):
        assert baton(command, "999") == (4, "", "error: Not Found: No job 999.\n")


@pytest.mark.django_db
def test_it_cancels_then_a_second_cancel_is_a_conflict(baton):
    job = make_job(JobStatus.WORKING)
    code, out, _ = baton("cancel", str(job.pk))
    assert code == 0 and out.startswith(f"job {job.pk} cancelled · ")
    code, out, err = baton("cancel", str(job.pk))
    assert (code, out) == (5, "")
    assert err == (
        f"error: Not allowed in this state: Job #{job.pk} is cancelled: there is nothing to "
        "cancel.\n"
    )


@pytest.mark.django_db
def test_it_retries_a_failed_job(baton):
    job = make_job(JobStatus.FAILED)
    code, out, _ = baton("retry", str(job.pk), "--json")
    assert code == 0
    assert json.loads(out)["status"] not in ("failed", "cancelled")
    assert Job.objects.get().status != JobStatus.FAILED


@pytest.mark.django_db
def test_it_reruns_a_job_from_a_subtask(baton):
    job = planned_job(JobStatus.COMPLETED)
    check = job.subtasks.get(key="check")
    code, out, _ = baton("rerun", str(check.pk), "--description", "Check it twice", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["rerun_of"], data["rerun_from"]) == (job.pk, "check")
    steps = {s["key"]: s for s in data["subtasks"]}
    assert steps["check"]["description"] == "Check it twice"
    assert steps["draft"]["copied_from"] == job.subtasks.get(key="draft").pk
    draft = job.subtasks.get(key="draft")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.WORKING)
    code, _, err = baton("rerun", str(draft.pk))
    assert code == 5 and "once it has ended" in err


@pytest.mark.django_db
def test_it_lists_agents(baton):
    team.seed()
    code, out, _ = baton("agents")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["SLUG", "ENABLED", "LOAD"]
    assert {r.split()[0] for r in rows} >= {"orchestrator", "researcher", "coder"}
    code, out, _ = baton("agents", "--json")
    assert {a["slug"] for a in json.loads(out)} == {r.split()[0] for r in rows}


@pytest.mark.django_db
def test_watching_an_ended_job_says_how_it_ended(baton):
    done = planned_job(JobStatus.COMPLETED, total_tokens=1234, total_cost="0.0012")
    assert baton("watch", str(done.pk)) == (
        0,
        f"job {done.pk} completed · 1/2 subtasks done · 1,234 tokens · $0.0012\n",
        "",
    )
    failed = make_job(JobStatus.FAILED, error="The planner answered nothing usable.")
    code, out, err = baton("watch", str(failed.pk))
    assert code == 1 and out.startswith(f"job {failed.pk} failed · ")
    assert err == f"job {failed.pk} failed: The planner answered nothing usable.\n"


@pytest.mark.django_db
def test_submit_wait_polls_a_server_without_a_stream_until_the_job_completes(baton):
    def work(reads: int) -> None:
        if reads == 3:  # the command has read the job twice while it was open
            Job.objects.update(status=JobStatus.COMPLETED, result="Use Celery.")

    transport = DjangoTransport(after_read=work)
    argv = ["--title=Queues", "--description=Celery or RQ, briefly?", "--wait", "--json"]
    code, out, err = baton("submit", *argv, transport=transport)
    assert code == 0, err
    job = json.loads(out)
    assert (job["status"], job["result"]) == ("completed", "Use Celery.")
    assert f"GET /api/v1/jobs/{job['id']}/events" in transport.paths  # it tried the stream


@pytest.mark.django_db
def test_submit_wait_exits_1_when_the_job_fails(baton):
    def fail(reads: int) -> None:
        Job.objects.update(status=JobStatus.FAILED, error="Budget exceeded.")

    argv = ["--title=Queues", "--description=Celery or RQ, briefly?", "--wait"]
    code, out, err = baton("submit", *argv, transport=DjangoTransport(after_read=fail))
    job = Job.objects.get()
    assert code == 1
    assert out == f"{job.pk}\n"  # the id; no result
    assert err == f"job {job.pk} failed: Budget exceeded.\n"


class ScriptedServer:
    """A server whose event streams are `streams` in turn, each a list of (id, event, status)
    sent one at a time and then ended; job 7 is as the events sent so far say: the last
    job.status, and `done` subtasks plus one per subtask.status "completed"."""

    def __init__(self, streams: list[list[tuple[str, str, str | None]]], done: int = 0):
        self.streams = streams
        self.status = "working"
        self.done = done
        self.reads = 0
        self.last_event_ids: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/jobs/7/events":
            self.last_event_ids.append(request.headers.get("Last-Event-ID"))
            stream = self.send(self.streams.pop(0))
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=stream
            )
        if (request.method, request.url.path) == ("POST", "/api/v1/jobs"):
            return httpx.Response(201, json={"id": 7, "status": "queued"})
        assert (request.method, request.url.path) == ("GET", "/api/v1/jobs/7")
        self.reads += 1
        job = {
            "id": 7,
            "status": self.status,
            "subtasks_done": self.done,
            "subtasks_total": 3,
            "total_tokens": 1234 * self.done,
            "total_cost": f"{0.0004 * self.done:.6f}",
            "controls": [],
            "result": "All done." if self.status == "completed" else "",
        }
        return httpx.Response(200, json=job)

    def send(self, events):
        yield b": connected\n\n"
        for entry_id, event, status in events:
            if event == "job.status":
                self.status = status
            if (event, status) == ("subtask.status", "completed"):
                self.done += 1
            data = json.dumps({"job_id": 7, "status": status})
            yield f"id: {entry_id}\nevent: {event}\ndata: {data}\n\n".encode()


@pytest.fixture
def scripted(monkeypatch):
    """`baton` against a ScriptedServer, where falling back to polling fails the test."""

    def no_polling(*args):
        raise AssertionError("it fell back to polling")

    monkeypatch.setattr(follow, "_poll", no_polling)
    monkeypatch.setattr(follow.time, "sleep", lambda s: None)
    monkeypatch.setenv("BATON_TOKEN", "tok")
    return lambda server, *argv: main(list(argv), transport=httpx.MockTransport(server))


def test_watch_follows_the_event_stream_with_a_progress_line(scripted, capsys):
    server = ScriptedServer(
        [
            [
                ("1-0", "job.status", "working"),
                ("1-1", "subtask.status", "completed"),
                ("1-2", "subtask.status", "completed"),
                ("1-3", "job.status", "completed"),
            ]
        ],
        done=1,
    )
    assert scripted(server, "watch", "7") == 0
    assert server.last_event_ids == [None]
    assert capsys.readouterr().out.splitlines() == [
        "job 7 working · 1/3 subtasks done · 1,234 tokens · $0.0004",
        "job 7 working · 2/3 subtasks done · 2,468 tokens · $0.0008",
        "job 7 working · 3/3 subtasks done · 3,702 tokens · $0.0012",
        "job 7 completed · 3/3 subtasks done · 3,702 tokens · $0.0012",
    ]


def test_a_burst_of_events_is_read_once_except_for_what_moves_the_count(
    scripted, monkeypatch, capsys
):
    monkeypatch.setattr(follow, "MIN_READ_INTERVAL_S", 60)  # the whole test is one burst
    burst = [(f"2-{n}", "call.finished", None) for n in range(10)]
    burst += [("2-10", "subtask.status", "working"), ("2-11", "state.version", None)]
    server = ScriptedServer(
        [[*burst, ("2-12", "subtask.status", "completed"), ("2-13", "job.status", "completed")]]
    )
    assert scripted(server, "submit", "--title=T", "--description=Ten calls.", "--wait") == 0
    # Before the stream, its first event, the end of a subtask and the end of the job.
    assert server.reads == 4
    assert capsys.readouterr().out == "7\nAll done.\n"


def test_watch_resumes_a_dropped_stream_from_the_last_event_id(scripted, capsys):
    server = ScriptedServer(
        [
            [("5-0", "subtask.status", "completed")],
            [
                ("5-1", "call.finished", None),
                ("5-2", "subtask.status", "completed"),
                ("6-0", "job.status", "completed"),
            ],
        ],
        done=1,
    )
    assert scripted(server, "watch", "7") == 0
    assert server.last_event_ids == [None, "5-0"]
    assert capsys.readouterr().out.splitlines() == [
        "job 7 working · 1/3 subtasks done · 1,234 tokens · $0.0004",
        "job 7 working · 2/3 subtasks done · 2,468 tokens · $0.0008",
        "job 7 working · 3/3 subtasks done · 3,702 tokens · $0.0012",
        "job 7 completed · 3/3 subtasks done · 3,702 tokens · $0.0012",
    ]


def test_a_server_error_or_no_answer_is_exit_6(monkeypatch, capsys):
    monkeypatch.setenv("BATON_TOKEN", "tok")
    broken = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>Bad gateway"))
    assert main(["agents"], transport=broken) == 6
    assert capsys.readouterr().err == "error: 502 Bad Gateway\n"
    assert main(["agents", "--url", f"http://127.0.0.1:{free_port()}"]) == 6
    assert capsys.readouterr().err.startswith("error: cannot reach http://127.0.0.1:")


def test_the_progress_line_reads_as_the_issue_shows_it():
    job = {"id": 12, "status": "working", "subtasks_done": 2, "subtasks_total": 3}
    job |= {"total_tokens": 1234, "total_cost": "0.001200", "controls": ["cancel"]}
    assert output.progress(job) == "job 12 working · 2/3 subtasks done · 1,234 tokens · $0.0012"
    review = {**job, "status": "waiting", "subtasks_done": 0, "controls": ["cancel", "review"]}
    assert "· plan awaits review ·" in output.progress(review)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_installed_command_runs_a_job_end_to_end(stack, seeded):
    executable = VENV_BIN / "baton"
    assert executable.exists(), "no baton script: pip install -e . (make install)"
    _, secret = ApiToken.objects.issue(seeded["bob"], "cli end to end")
    env = {**os.environ, "BATON_URL": stack.base_url, "BATON_TOKEN": secret}

    def baton(*argv: str, **env_extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(executable), *argv],
            env={**env, **env_extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    ran = baton("submit", "--title", "CLI watched", "--description", "Plan a picnic, then check.")
    assert ran.returncode == 0, ran.stderr
    watched_id = int(ran.stdout)
    watched = baton("watch", str(watched_id))  # live, from the event stream
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[-1].startswith(f"job {watched_id} completed · 3/3 subtasks done · ")

    argv = ["--title", "CLI waited", "--description", "Plan a picnic, then check it."]
    ran = baton("submit", *argv, "--wait", "--json")
    assert ran.returncode == 0, ran.stderr
    job = json.loads(ran.stdout)
    assert job["status"] == "completed" and "simulator" in job["result"]
    assert Job.objects.get(pk=job["id"]).status == JobStatus.COMPLETED

    listed = baton("jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {job["id"], watched_id} <= {j["id"] for j in json.loads(listed.stdout)}

    refused = baton("jobs", BATON_TOKEN="not-a-token")
    assert refused.returncode == 3
    assert refused.stderr.startswith("error: Unauthorized: ")


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_watch_follows_a_running_job_on_the_stacks_event_stream(stack, seeded, monkeypatch, capsys):
    def no_polling(*args):
        raise AssertionError("watch fell back to polling")

    monkeypatch.setattr(follow, "_poll", no_polling)
    _, secret = ApiToken.objects.issue(seeded["bob"], "cli watch")
    api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {secret}"})
    body = {"title": "CLI reviewed", "description": "Plan a picnic, then check.", "review_plan": 1}
    job_id = api.post("/api/v1/jobs", json=body).json()["id"]
    wait_until(lambda: Job.objects.get(pk=job_id).awaiting_review, "the plan to await review")

    codes: list[int] = []
    argv = ["watch", str(job_id), "--url", stack.base_url, "--token", secret]
    watching = threading.Thread(target=lambda: codes.append(main(argv)))
    watching.start()
    time.sleep(1)  # the command reads the job and opens its stream
    assert api.post(f"/api/v1/jobs/{job_id}/approve").status_code == 200
    watching.join(timeout=60)

    assert codes == [0]
    lines = capsys.readouterr().out.splitlines()
    assert "plan awaits review" in lines[0]
    assert lines[-1].startswith(f"job {job_id} completed · 3/3 subtasks done · ")
