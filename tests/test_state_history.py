"""The shared state's history grows with what is written, not with the state's size times its
versions, and every version still rebuilds exactly as it was written."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import JSONField
from django.test.utils import CaptureQueriesContext

from agents import state
from agents.models import Job, SharedState, SharedStateVersion

from .cast import person

pytestmark = pytest.mark.django_db

WRITES = 200
PER_VERSION = 64  # bytes a version may add besides its change: its own row's overhead


def stored_bytes() -> int:
    """JSON bytes the versions' table holds, whichever columns hold them."""
    columns = [f.name for f in SharedStateVersion._meta.concrete_fields if isinstance(f, JSONField)]
    rows = SharedStateVersion.objects.values_list(*columns)
    return sum(len(json.dumps(value)) for row in rows for value in row if value is not None)


def new_job() -> Job:
    job = Job.objects.create(title="t", description="d" * 20)
    SharedState.objects.create(job=job)
    return job


def grow(job: Job, writes: int = WRITES, start: int = 0) -> list[dict]:
    """`writes` results of 300 characters, with a step counter; the state after each."""
    written = []
    for i in range(start, start + writes):
        state.write(job.pk, {"results": {f"r{i}": f"{i:03} " + "x" * 296}, "step": i}, author="w")
        written.append(SharedState.objects.get(job=job).data)
    return written


def test_200_writes_of_a_growing_state_store_about_the_final_state_once():
    job = new_job()
    final = grow(job)[-1]
    size = len(json.dumps(final))
    assert stored_bytes() < 3 * size + WRITES * PER_VERSION, (stored_bytes(), size)


def test_every_version_rebuilds_as_it_was_written():
    job = new_job()
    written = grow(job)
    shared = SharedState.objects.get(job=job)
    for number, data in enumerate(written, start=1):
        assert state.data_at(shared.pk, number) == data, number
    assert state.data_at(shared.pk, 0) == {}
    assert state.version_data(job.pk, 200) == written[-1]
    assert state.version_data(job.pk, 201) is None


def test_overwrites_keep_the_history_linear_and_exact():
    job = new_job()
    for _ in range(WRITES):
        state.update(job.pk, lambda data: {"counter": data.get("counter", 0) + 1}, author="b")
    assert stored_bytes() < WRITES * PER_VERSION
    shared = SharedState.objects.get(job=job)
    assert [state.data_at(shared.pk, n)["counter"] for n in range(1, WRITES + 1)] == list(
        range(1, WRITES + 1)
    )


def test_a_rebuild_reads_two_queries_and_a_bounded_share_of_the_history(
    django_assert_num_queries,
):
    job = new_job()
    for _ in range(WRITES):
        state.update(job.pk, lambda data: {"counter": data.get("counter", 0) + 1}, author="b")
    shared = SharedState.objects.get(job=job)
    with django_assert_num_queries(2):
        assert state.data_at(shared.pk, 150) == {"counter": 150}
    snapshots = SharedStateVersion.objects.filter(snapshot__isnull=False, version__lte=150)
    nearest = snapshots.order_by("-version").values_list("version", flat=True).first()
    assert 150 - nearest < 10  # a tiny state is kept whole every few versions


def test_a_version_row_still_says_what_it_held():
    job = new_job()
    state.write(job.pk, {"pending_tasks": [{"id": "a"}]}, author="orchestrator/plan")
    state.record_result(job.pk, "a", "done", author="researcher/a")
    second = SharedStateVersion.objects.get(state__job=job, version=2)
    assert second.changes == {"results": {"a": "done"}, "pending_tasks": []}
    assert second.data == {"pending_tasks": [], "results": {"a": "done"}}


def test_the_job_page_reads_the_same_few_queries_for_a_long_history(client):
    client.force_login(person("alice"))
    job = new_job()
    grow(job, 30)

    def page() -> str:
        return client.get(f"/jobs/{job.pk}/").content.decode()

    with CaptureQueriesContext(connection) as few:
        page()
    grow(job, 170, start=30)  # 200 versions now, each write into a bigger state
    with CaptureQueriesContext(connection) as many:
        shown = page()
    assert len(many) == len(few)
    assert "v200 by <strong>w</strong>" in shown and "v181 by" in shown and "v180 by" not in shown
    assert "<code>results.r199</code></td><td>added</td>" in shown
    assert "<code>step</code></td><td>changed</td>" in shown


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_version_it_converts():
    executor = MigrationExecutor(connection)
    executor.migrate([("agents", "0010_agent_bounds")])
    old = executor.loader.project_state([("agents", "0010_agent_bounds")]).apps
    job = old.get_model("agents", "Job").objects.create(title="t", description="d" * 20)
    shared = old.get_model("agents", "SharedState").objects.create(job_id=job.pk, version=4)
    recorded = [
        ({"a": 1}, {"a": 1}),
        ({"a": 1, "r": {"x": "1"}}, {"r": {"x": "1"}}),
        ({"r": {"x": "1"}}, {"note": "written by hand"}),  # not what a merge would give
        ({"r": {"x": "1", "y": "2"}}, {"r": {"y": "2"}}),
    ]
    old.get_model("agents", "SharedStateVersion").objects.bulk_create(
        old.get_model("agents", "SharedStateVersion")(
            state_id=shared.pk, version=n, data=data, changes=changes, author="x"
        )
        for n, (data, changes) in enumerate(recorded, start=1)
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    for n, (data, _) in enumerate(recorded, start=1):
        assert state.data_at(shared.pk, n) == data, n
    kept = SharedStateVersion.objects.filter(snapshot__isnull=False)
    assert 3 in kept.values_list("version", flat=True)
    assert SharedStateVersion.objects.get(version=4).changes == {"r": {"y": "2"}}


def test_admin_shows_a_versions_whole_state(admin_client):
    job = new_job()
    state.write(job.pk, {"results": {"a": "first answer"}}, author="w")
    state.write(job.pk, {"results": {"b": "second answer"}}, author="w")
    second = SharedStateVersion.objects.get(version=2)
    page = admin_client.get(f"/admin/agents/sharedstateversion/{second.pk}/change/")
    assert page.status_code == 200
    assert "first answer" in page.content.decode()  # rebuilt, not only this version's change
    shared = admin_client.get(f"/admin/agents/sharedstate/{second.state_id}/change/")
    assert shared.status_code == 200 and "second answer" in shared.content.decode()
