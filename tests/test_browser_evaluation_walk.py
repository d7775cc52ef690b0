"""Issue 17's acceptance walk in Chromium against the real stack (Daphne, a Celery worker,
the LLM simulator): the reviewer's prompt edited to v2, a dataset of five cases from its form
and from finished jobs, an experiment on v1 and one on v2 with the judge and "Not empty",
their comparison, the version in a case job's trace and the quality term in "why picked".

The walk itself is tests/walk.py (also run by hand against `make dev`). Screenshots only
when BATON_WALK_SHOTS names a directory.
"""

import os
from pathlib import Path

import pytest

from agents.models import Experiment, ExperimentStatus, Job, QualitySample, Score
from agents.scoring import ensure_default_scorers

from .browser import user_page
from .stack import start_stack
from .walk import walk

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]


@pytest.fixture(scope="module")
def walk_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """A stack of its own: a quick simulator, and quality read afresh by every allocation
    (the walk's last job must see the experiments' scores at once, not a cached prior)."""
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("walk"), latency_ms=5, exclusive=True, QUALITY_CACHE_S="0"
        )
    yield running
    running.stop()


def test_a_new_user_evaluates_a_prompt_change_end_to_end(walk_stack, seeded, browser):
    ensure_default_scorers()
    shots = os.environ.get("BATON_WALK_SHOTS")
    page = user_page(browser, walk_stack.base_url, "alice")
    page.set_default_timeout(10_000)

    seen = walk(page, walk_stack.base_url, Path(shots) if shots else None)
    print("walk seconds:", seen["seconds"])

    before, after = seen["reviewer_versions"]["before"], seen["reviewer_versions"]["after"]
    assert (before, after) == (1, 2)
    first, second = (Experiment.objects.get(pk=e["id"]) for e in seen["experiments"])
    assert first.agent_versions == {"reviewer": 1}
    assert second.status == first.status == ExperimentStatus.COMPLETED
    for experiment in (first, second):
        jobs = Job.objects.filter(experiment_case__experiment=experiment)
        assert jobs.count() == 5
        assert Score.objects.filter(job__in=jobs).count() == 10  # two scorers per case
    # The pages' figures are the database's.
    assert seen["experiments"][0]["scores"]["Not empty"]["mean"] == 1.0
    assert seen["compare"]["versions"] == ["A: Reviewer v1 → B: Reviewer v2"]
    trace_job = Job.objects.get(pk=seen["trace"]["job"])
    assert trace_job.experiment_case.experiment == first
    assert trace_job.subtasks.get(agent__slug="reviewer").agent_version == 1
    assert QualitySample.objects.filter(agent__slug="reviewer").count() >= 5
    assert "prior" not in seen["why_picked"]["reviewer_quality"]
