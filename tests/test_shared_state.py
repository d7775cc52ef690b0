"""The per-job blackboard: merge semantics, and compare-and-set writes that lose nothing
under 100 concurrent writers, with a version history without gap or duplicate."""

import threading

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from agents import state
from agents.models import Job, SharedState, SharedStateVersion

WRITERS = 100


# --- merge: top-level keys replaced, dicts merged one level deep ---------------------------


def test_merge_replaces_top_level_values():
    assert state.merge({"a": 1, "b": "x"}, {"a": 2}) == {"a": 2, "b": "x"}


def test_merge_adds_new_keys():
    assert state.merge({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}


def test_merge_merges_dicts_one_level_deep():
    merged = state.merge({"results": {"r1": "one"}}, {"results": {"r2": "two"}})
    assert merged == {"results": {"r1": "one", "r2": "two"}}


def test_merge_overwrites_a_key_inside_a_merged_dict():
    merged = state.merge({"results": {"r1": "old", "r2": "kept"}}, {"results": {"r1": "new"}})
    assert merged == {"results": {"r1": "new", "r2": "kept"}}


def test_merge_replaces_dicts_below_the_first_level():
    merged = state.merge({"r": {"a": {"x": 1}}}, {"r": {"a": {"y": 2}}})
    assert merged == {"r": {"a": {"y": 2}}}


def test_merge_replaces_lists_rather_than_appending():
    merged = state.merge({"pending_tasks": [{"id": "a"}, {"id": "b"}]}, {"pending_tasks": []})
    assert merged == {"pending_tasks": []}


def test_merge_replaces_a_dict_by_a_non_dict_and_back():
    assert state.merge({"k": {"a": 1}}, {"k": [1]}) == {"k": [1]}
    assert state.merge({"k": 1}, {"k": {"a": 1}}) == {"k": {"a": 1}}
    assert state.merge({"k": {"a": 1}}, {"k": None}) == {"k": None}


def test_merge_with_no_changes_is_an_equal_copy():
    data = {"a": {"b": 1}}
    merged = state.merge(data, {})
    assert merged == data and merged is not data


def test_merge_mutates_neither_argument():
    data = {"results": {"r1": 1}, "n": 1}
    changes = {"results": {"r2": 2}, "n": 2}
    state.merge(data, changes)
    assert data == {"results": {"r1": 1}, "n": 1}
    assert changes == {"results": {"r2": 2}, "n": 2}


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)
json_object = st.dictionaries(st.text(max_size=3), json_value, max_size=5)


@given(json_object, json_object)
def test_merge_property(data, changes):
    merged = state.merge(data, changes)
    assert set(merged) == set(data) | set(changes)
    for key, value in merged.items():
        if key not in changes:
            assert value == data[key]
        elif isinstance(changes[key], dict) and isinstance(data.get(key), dict):
            assert value == {**data[key], **changes[key]}
        else:
            assert value == changes[key]
    # Applying the same changes again changes nothing: a re-applied write is harmless.
    assert state.merge(merged, changes) == merged


# --- compare-and-set under concurrency --------------------------------------------------


def _new_job() -> Job:
    job = Job.objects.create(title="Shared state", description="Many writers, one state.")
    SharedState.objects.create(job=job)
    return job


def _connection_headroom() -> int:
    """How many more connections PostgreSQL accepts, keeping 10 for everything else."""
    if connection.vendor != "postgresql":
        return WRITERS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend'"
        )
        return cursor.fetchone()[0] - 10


def _run_concurrently(n: int, work, max_connections: int) -> list[BaseException]:
    """Start `n` threads at once; at most `max_connections` hold a DB connection at a time."""
    start = threading.Barrier(n)
    gate = threading.BoundedSemaphore(max_connections)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            with gate:
                try:
                    work(i)
                finally:
                    connection.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer never finished"
    return errors


@pytest.mark.django_db(transaction=True)
def test_100_concurrent_writers_lose_no_update():
    job = _new_job()
    first = state.write(job.pk, {"results": {"seed": 0}, "topic": "cache"}, author="seed")
    assert first == 1
    concurrency = min(WRITERS, _connection_headroom())
    assert concurrency >= 20, f"PostgreSQL has room for only {concurrency} more connections"

    versions_won: list[int] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        version = state.write(job.pk, {"results": {f"w{i}": i}}, author=f"writer-{i}")
        with lock:
            versions_won.append(version)

    errors = _run_concurrently(WRITERS, write, concurrency)
    print(f"\n{WRITERS} writers, {concurrency} at once on the database")
    assert not errors, errors

    shared = SharedState.objects.get(job=job)
    assert shared.version == WRITERS + 1
    assert shared.data["results"] == {"seed": 0, **{f"w{i}": i for i in range(WRITERS)}}
    assert shared.data["topic"] == "cache"
    # Each writer was told a distinct version, and together they are 2..101.
    assert sorted(versions_won) == list(range(2, WRITERS + 2))

    history = list(SharedStateVersion.objects.filter(state=shared).order_by("version"))
    assert [v.version for v in history] == list(range(1, WRITERS + 2))
    assert {v.author for v in history} == {"seed"} | {f"writer-{i}" for i in range(WRITERS)}
    # Every version holds what the one before it held, plus exactly its own change.
    for before, after in zip(history, history[1:], strict=False):
        assert after.data == state.merge(before.data, after.changes), after.version
        assert len(after.data["results"]) == len(before.data["results"]) + 1
    assert history[-1].data == shared.data


@pytest.mark.django_db(transaction=True)
def test_a_read_modify_write_reapplies_on_the_latest_data():
    job = _new_job()
    counters = 50

    def bump(i: int) -> None:
        state.update(job.pk, lambda data: {"counter": data.get("counter", 0) + 1}, author=f"b{i}")

    errors = _run_concurrently(counters, bump, min(counters, _connection_headroom()))
    assert not errors, errors
    shared = SharedState.objects.get(job=job)
    assert shared.data["counter"] == counters
    assert shared.version == counters
    history = SharedStateVersion.objects.filter(state=shared).order_by("version")
    assert [v.data["counter"] for v in history] == list(range(1, counters + 1))


@pytest.mark.django_db
def test_each_write_is_a_new_version_with_its_author_and_change():
    job = _new_job()
    assert state.write(job.pk, {"pending_tasks": [{"id": "a"}]}, author="orchestrator/plan") == 1
    assert state.write(job.pk, {"results": {"a": "done"}}, author="researcher/a") == 2
    history = list(SharedStateVersion.objects.filter(state__job=job).order_by("version"))
    assert [(v.version, v.author, v.changes) for v in history] == [
        (1, "orchestrator/plan", {"pending_tasks": [{"id": "a"}]}),
        (2, "researcher/a", {"results": {"a": "done"}}),
    ]
    assert history[-1].data == {"pending_tasks": [{"id": "a"}], "results": {"a": "done"}}
    assert SharedState.objects.get(job=job).data == history[-1].data
