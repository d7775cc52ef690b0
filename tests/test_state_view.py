"""The blackboard on the job page: a tree, escaped, and versions with their diffs."""

import pytest

from agents import state
from agents.models import Job, SharedState

pytestmark = pytest.mark.django_db


def test_it_diffs_versions():
    old = {"results": {"a": "1"}, "pending_tasks": [1, 2]}
    new = {"results": {"a": "1", "b": "2"}, "final": "done", "pending_tasks": [2]}
    assert state.diff(old, new) == [
        ("final", "added", None, "done"),
        ("pending_tasks", "changed", [1, 2], [2]),
        ("results.b", "added", None, "2"),
    ]


def test_the_job_page_shows_the_tree_and_who_wrote_each_version(client, viewer):
    job = Job.objects.create(title="t", description="d" * 20)
    SharedState.objects.create(job=job)
    state.write(job.pk, {"pending_tasks": [{"id": "a"}]}, author="orchestrator/plan")
    state.write(job.pk, {"results": {"a": "<b>bold</b>"}}, author="coder/a")

    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert '<span class="key">results</span>' in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "v2 by <strong>coder/a</strong>" in page
    assert "v1 by <strong>orchestrator/plan</strong>" in page
    assert "<code>results</code></td><td>added</td>" in page


def test_a_job_page_opens_before_the_state_has_a_version(client, viewer):
    job = Job.objects.create(title="fresh", description="d" * 20)
    SharedState.objects.create(job=job)
    response = client.get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    assert 'id="state-version">v0<' in response.content.decode()
