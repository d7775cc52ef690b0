"""The `baton` command for templates, schedules, tags, idempotency keys and bulk actions,
against the API in this process."""

from __future__ import annotations

import json

import httpx
import pytest

from agents.models import ApiToken, IdempotencyKey, Job, JobStatus, JobTemplate, Schedule
from baton_cli import client
from baton_cli.main import main

from .api_support import make_job
from .test_cli import DjangoTransport

pytestmark = pytest.mark.django_db


class LosesAnswers(DjangoTransport):
    """The server gets each POST and acts on it; its answer to the first `lost` POSTs never
    reaches the command (a timeout after the job was made)."""

    def __init__(self, lost: int) -> None:
        super().__init__()
        self.lost = lost
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if len(self.keys) <= self.lost:
                raise httpx.ReadTimeout("timed out", request=request)
        return response


@pytest.fixture
def baton(users, monkeypatch, capsys, no_broker):
    """Run `baton` in process as the operator (or `user`); the exit code, stdout, stderr."""
    secrets = {name: ApiToken.objects.issue(user, "cli")[1] for name, user in users.items()}
    monkeypatch.setattr(client, "RETRY_WAIT_S", 0)

    def run(*argv: str, user: str = "operator", transport=None):
        monkeypatch.setenv("BATON_TOKEN", secrets[user])
        code = main(list(argv), transport=transport or DjangoTransport())
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def digest() -> JobTemplate:
    return JobTemplate.objects.create(
        name="digest",
        title="Digest for {date}",
        description="Summarise what changed in the repository.",
        priority=2,
        tags="nightly research",
    )


JOB = ("--title", "Compare queues", "--description", "Celery or RQ for a small team?")


def test_submit_sends_tags(baton):
    code, out, _ = baton("submit", *JOB, "--tag", "Ops", "--tag", "db")
    job = Job.objects.get()
    assert (code, out) == (0, f"{job.pk}\n")
    assert job.tag_list == ["ops", "db"]


def test_submit_sends_a_new_key_per_command(baton):
    baton("submit", *JOB)
    baton("submit", *JOB)
    assert Job.objects.count() == 2
    keys = IdempotencyKey.objects.values_list("key", flat=True)
    assert len(set(keys)) == 2


def test_the_same_idempotency_key_gives_the_same_job(baton):
    first = baton("submit", *JOB, "--idempotency-key", "queues-1")
    again = baton("submit", *JOB, "--idempotency-key", "queues-1")
    job = Job.objects.get()
    assert first == again == (0, f"{job.pk}\n", "")
    code, _, err = baton(
        "submit", "--title", "Other", "--description", "Another job, same key.",
        "--idempotency-key", "queues-1",
    )  # fmt: skip
    assert code == client.USAGE
    assert "Idempotency key already used" in err and Job.objects.count() == 1


def test_a_lost_answer_is_asked_again_with_the_same_key_and_pays_once(baton):
    transport = LosesAnswers(lost=1)
    code, out, err = baton("submit", *JOB, transport=transport)
    job = Job.objects.get()
    assert (code, out, err) == (0, f"{job.pk}\n", "")
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1] is not None


def test_when_every_answer_is_lost_it_says_which_key_gets_the_job(baton):
    code, out, err = baton("submit", *JOB, transport=LosesAnswers(lost=99))
    assert (code, out) == (client.SERVER, "")
    job = Job.objects.get()  # made by the first attempt, once
    key = IdempotencyKey.objects.get(job=job).key
    assert f"--idempotency-key {key}" in err
    assert baton("submit", *JOB, "--idempotency-key", key) == (0, f"{job.pk}\n", "")


def test_submit_a_template(baton, digest):
    code, out, err = baton("submit", "--template", "digest")
    job = Job.objects.get()
    assert (code, out, err) == (0, f"{job.pk}\n", "")
    assert (job.template, job.priority, job.tag_list) == (digest, 2, ["nightly", "research"])
    assert "{date}" not in job.title
    code, out, _ = baton("templates", "submit", "digest", "--timezone", "Asia/Tokyo", "--json")
    assert code == 0 and json.loads(out)["template"] == "digest"


def test_a_template_takes_no_job_fields(baton, digest):
    code, _, err = baton("submit", "--template", "digest", "--title", "x", "--tag", "y")
    assert code == client.USAGE
    assert "--title, --tag" in err
    code, _, err = baton("submit", "--title", "x")
    assert code == client.USAGE and "--description" in err
    code, _, err = baton("submit", *JOB, "--timezone", "UTC")
    assert code == client.USAGE and "--template" in err
    assert not Job.objects.exists()


def test_templates_list_and_show(baton, digest):
    code, out, _ = baton("templates", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "PRI", "TAGS", "SCHEDULES", "TITLE"]
    assert row.split()[:3] == ["digest", "2", "nightly,"] and "Digest for {date}" in row
    code, out, _ = baton("templates", "show", "digest")
    assert code == 0
    assert ["tags", "nightly,", "research"] in [line.split() for line in out.splitlines()]
    assert out.rstrip().endswith("Summarise what changed in the repository.")
    assert baton("templates", "show", "nothing")[0] == client.NOT_FOUND


def test_schedules_create_show_pause_resume_delete(baton, digest):
    code, out, err = baton(
        "schedules", "create", "--name", "nightly", "--template", "digest",
        "--cron", "30 2 * * *", "--timezone", "Europe/Berlin", "--on-overlap", "cancel_previous",
    )  # fmt: skip
    assert code == 0, err
    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.timezone, schedule.on_overlap) == (
        "30 2 * * *",
        "Europe/Berlin",
        "cancel_previous",
    )
    assert "next runs:" in out and ["state", "on"] in [line.split() for line in out.splitlines()]
    code, out, _ = baton("schedules", "create", "--name", "often", "--template", "digest",
                         "--every", "600", "--paused", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["interval_s"] == 600
    assert json.loads(out)["enabled"] is False
    code, out, _ = baton("schedules", "list")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["nightly", "often"]
    assert "paused" in out.splitlines()[2]
    assert baton("schedules", "pause", str(schedule.pk))[0] == 0
    schedule.refresh_from_db()
    assert schedule.enabled is False
    code, out, _ = baton("schedules", "resume", str(schedule.pk))
    assert code == 0 and ["state", "on"] in [line.split() for line in out.splitlines()]
    assert baton("schedules", "show", str(schedule.pk))[0] == 0
    assert baton("schedules", "delete", str(schedule.pk))[:2] == (
        0,
        f"schedule {schedule.pk} deleted\n",
    )
    assert list(Schedule.objects.values_list("name", flat=True)) == ["often"]


def test_schedules_create_needs_one_timing(baton, digest):
    assert baton("schedules", "create", "--name", "x", "--template", "digest")[0] == 2
    code, _, err = baton("schedules", "create", "--name", "x", "--template", "digest",
                         "--cron", "99 * * * *")  # fmt: skip
    assert code == client.USAGE and "cron" in err
    assert not Schedule.objects.exists()


def test_jobs_lists_by_tag_and_status(baton):
    tagged = make_job(JobStatus.FAILED, tags="nightly")
    make_job(JobStatus.FAILED)
    code, out, _ = baton("jobs", "--tag", "nightly", "--status", "failed", "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [tagged.pk]


@pytest.fixture
def outage():
    failed = [make_job(JobStatus.FAILED, tags="nightly") for _ in range(3)]
    working = make_job(JobStatus.WORKING, tags="nightly")
    return failed, working


def test_bulk_dry_run_prints_the_preview(baton, outage):
    failed, working = outage
    code, out, err = baton(
        "jobs", "bulk", "retry", "--tag", "nightly", "--since", "1h", "--dry-run"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "retry: 4 jobs match; 3 would be retried, 1 skipped"
    assert lines[1] == "  1 skipped: not failed or cancelled"
    assert any(line.split()[:3] == [str(working.pk), "working", "not"] for line in lines)
    assert Job.objects.filter(status=JobStatus.FAILED).count() == 3


def test_bulk_without_yes_and_no_terminal_does_nothing(baton, outage):
    code, out, err = baton("jobs", "bulk", "cancel", "--tag", "nightly")
    assert code == client.USAGE
    assert out.startswith("cancel: 4 jobs match; 1 would be cancelled, 3 skipped")
    assert "add --yes" in err
    assert Job.objects.filter(status=JobStatus.WORKING).count() == 1


def test_bulk_with_yes_applies(baton, outage):
    failed, working = outage
    code, out, err = baton("jobs", "bulk", "cancel", "--tag", "nightly", "--status", "working",
                           "--until", "2999-01-01", "--yes")  # fmt: skip
    assert (code, err) == (0, "")
    assert out == f"cancel: 1 jobs ({working.pk})\n"
    assert Job.objects.get(pk=working.pk).status == JobStatus.CANCELLED
    code, out, _ = baton("jobs", "bulk", "retry", "--tag", "nightly", "--yes", "--json")
    result = json.loads(out)
    assert sorted(result["applied"]) == sorted([j.pk for j in failed] + [working.pk])


def test_bulk_refuses_a_time_it_cannot_read(baton, outage):
    code, _, err = baton("jobs", "bulk", "cancel", "--since", "last week", "--yes")
    assert code == client.USAGE and "--since" in err
