"""LOG_FORMAT=json: one JSON object per line, with the job and subtask a line is about."""

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from agents import telemetry
from agents.models import JobStatus, LLMCall

from .inprocess import run_job, simulated_llm, team_on_a_model_of_its_own
from .stack import ROOT

SCRIPT = """
import logging, django
django.setup()
from agents import telemetry

log = logging.getLogger("agents.steps")
log.warning("before any step")
telemetry.step("synthesis")(lambda job_id: log.warning("composing %s", "the answer"))(41)
telemetry.step("subtask")(lambda subtask_id: log.warning("calling"))(7)
try:
    raise ValueError("bad\\nanswer")
except ValueError:
    log.exception("failed")
log.warning("given", extra={"job_id": 3})
"""


def run_script(tmp_path, log_format: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOG_FORMAT": log_format, "BATON_VAR_DIR": str(tmp_path)}
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_each_line_is_one_json_object_with_the_ids(tmp_path):
    result = run_script(tmp_path, "json")
    assert result.returncode == 0, result.stderr

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["message"] for line in lines] == [
        "before any step",
        "composing the answer",
        "calling",
        "failed",
        "given",
    ]
    for line in lines:
        assert line["level"] == "WARNING" or line["message"] == "failed"
        assert line["logger"] == "agents.steps"
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    before, synthesis, subtask, failed, given = lines
    assert "job_id" not in before and "subtask_id" not in before
    assert synthesis["job_id"] == 41 and "subtask_id" not in synthesis
    assert subtask["subtask_id"] == 7 and "job_id" not in subtask
    assert failed["level"] == "ERROR"
    assert "ValueError: bad\nanswer" in failed["exc_info"]
    assert given["job_id"] == 3


def test_text_stays_the_default(tmp_path):
    result = run_script(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == "before any step"


def test_a_bad_format_names_its_variable(tmp_path):
    result = run_script(tmp_path, "yaml")
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


@pytest.mark.django_db
def test_the_lines_of_a_running_job_carry_its_ids(
    settings, monkeypatch, sent, django_capture_on_commit_callbacks
):
    """The steps themselves set the ids: a subtask's call is logged with both."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(telemetry.StepIds())
    handler.setFormatter(telemetry.JsonFormatter())
    logger = logging.getLogger("agents.telemetry")
    level = logger.level
    logger.setLevel(logging.DEBUG)  # each call is logged at DEBUG
    logger.addHandler(handler)
    try:
        team_on_a_model_of_its_own(monkeypatch)
        with simulated_llm(settings):
            job = run_job(sent, django_capture_on_commit_callbacks)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert job.status == JobStatus.COMPLETED

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    calls = LLMCall.objects.filter(job=job)
    assert len(lines) == calls.count()
    assert {line["job_id"] for line in lines} == {job.pk}
    subtask_ids = set(calls.exclude(subtask=None).values_list("subtask_id", flat=True))
    assert {line["subtask_id"] for line in lines if "subtask_id" in line} == subtask_ids
    assert sum("subtask_id" not in line for line in lines) == 2  # the plan and the synthesis
