"""The per-job blackboard: compare-and-set writes, every version kept with its author.

A version stores its changes; `merge` (agents.statemerge) defines how they apply, so any
version is rebuilt by merging the changes after the nearest snapshot before it. A version
also stores the whole state when the changes since the last snapshot outweigh SNAPSHOT_AFTER
times the state: the snapshots then add at most 1/SNAPSHOT_AFTER of the changes' bytes (the
history grows linearly with what is written), and a rebuild reads at most that many times
the state.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from . import events
from .jsonvalues import JSON_MAX_DEPTH, depth
from .models import SharedState, SharedStateVersion
from .statemerge import loads, merge, replay

MAX_CAS_ATTEMPTS = 100
SNAPSHOT_AFTER = 2
# Levels a written value may nest: pages render the state as a tree, and Python's JSON and
# templates recurse (a few hundred levels broke the job page for everyone).
MAX_DEPTH = JSON_MAX_DEPTH


class StateConflict(RuntimeError):
    pass


class StateTooDeep(ValueError):
    """A write nests deeper than MAX_DEPTH: refused, and the tool's caller reads why."""


def check_depth(changes: dict) -> None:
    """Raise StateTooDeep when a value of `changes` nests deeper than MAX_DEPTH."""
    for key, value in changes.items():
        nested = depth(value)
        if nested > MAX_DEPTH:
            raise StateTooDeep(
                f"The value of {key!r} is nested {nested} deep; the shared state takes at "
                f"most {MAX_DEPTH} levels."
            )


def for_page(job_id: int) -> SharedState | None:
    """A job's state to show: its data read through `loads`, so that however deep it was
    stored it renders (bounded) instead of failing the page."""
    row = (
        SharedState.objects.filter(job_id=job_id)
        .defer("data")
        .annotate(data_text=Cast("data", TextField()))
        .first()
    )
    if row is not None:
        row.data = loads(row.data_text)
    return row


def takes_snapshot(chain_bytes: int, data: dict) -> bool:
    """Whether a version keeps the whole state, given the bytes of changes since the last."""
    return chain_bytes > SNAPSHOT_AFTER * len(json.dumps(data))


def write(job_id: int, changes: dict, *, author: str) -> int:
    """Apply `changes` as a new version and return it. A lost race re-reads and re-applies."""
    return update(job_id, lambda data: changes, author=author)


def update(job_id: int, change: Callable[[dict], dict], *, author: str) -> int:
    """Apply `change(current data)` (which returns the changes) as a new version."""
    for _ in range(MAX_CAS_ATTEMPTS):
        current = SharedState.objects.filter(job_id=job_id).values(
            "pk", "version", "data", "chain_bytes"
        )
        row = current.first()
        if row is None:
            SharedState.objects.get_or_create(job_id=job_id)
            continue
        proposed = change(row["data"])
        # Refused before any write: raised inside the transaction below, it would spoil
        # the caller's (savepoint=False).
        check_depth(proposed)
        # As the database will hold them, so that a rebuild merges exactly these.
        text = json.dumps(proposed)
        changes = json.loads(text)
        version = row["version"] + 1
        data = merge(row["data"], changes)
        chain = row["chain_bytes"] + len(text)
        snapshot = data if takes_snapshot(chain, data) else None
        # No savepoint inside a caller's transaction: a lost race writes nothing to undo.
        with transaction.atomic(savepoint=False):
            won = SharedState.objects.filter(pk=row["pk"], version=row["version"]).update(
                data=data, version=version, chain_bytes=0 if snapshot is not None else chain
            )
            if won:
                SharedStateVersion.objects.create(
                    state_id=row["pk"],
                    version=version,
                    changes=changes,
                    snapshot=snapshot,
                    author=author,
                )
                events.state_changed(job_id, version=version)
                return version
    raise StateConflict(f"state of job {job_id}: no write won after {MAX_CAS_ATTEMPTS} tries")


def record_result(job_id: int, key: str, result: str, *, author: str) -> int:
    """A subtask's result into `results`, and the subtask out of `pending_tasks`."""

    def change(data: dict) -> dict:
        pending = [t for t in data.get("pending_tasks", []) if t.get("id") != key]
        return {"results": {key: result}, "pending_tasks": pending}

    return update(job_id, change, author=author)


def data_at(state_id: int, version: int) -> dict:
    """The whole state as of `version` (0: before the first write): two queries."""
    return replay(SharedStateVersion.objects.filter(state_id=state_id), upto=version)


def version_data(job_id: int, version: int) -> dict | None:
    """A job's state as of `version`, or None when it has no such version."""
    if version == 0:
        return {}
    state_id = SharedState.objects.filter(job_id=job_id).values_list("pk", flat=True).first()
    if state_id is None:
        return None
    if not SharedStateVersion.objects.filter(state_id=state_id, version=version).exists():
        return None
    return data_at(state_id, version)


def history(state: SharedState | None, count: int = 20) -> list[dict]:
    """The newest `count` versions, newest first, each as {"version": the row, "changes":
    `diff` rows against the version before}: three queries, whatever the history's length."""
    if state is None or state.version == 0:
        return []
    first = max(state.version - count + 1, 1)
    rows = SharedStateVersion.objects.filter(state_id=state.pk)
    data = replay(rows, upto=first - 1)
    shown = []
    shown_rows = (
        rows.filter(version__gte=first)
        .defer("snapshot", "changes")
        .annotate(changes_text=Cast("changes", TextField()))
        .order_by("version")
    )
    for row in shown_rows:
        row.changes = loads(row.changes_text)
        touched = row.changes.keys()
        before = {key: data[key] for key in touched if key in data}
        data = merge(data, row.changes)  # a copy: `before` keeps what it held
        after = {key: data[key] for key in touched}
        shown.append({"version": row, "changes": diff(before, after)})
    return shown[::-1]


def diff(old: dict, new: dict, prefix: str = "") -> list[tuple[str, str, object, object]]:
    """What changed between two versions: (path, "added" | "removed" | "changed", old, new)."""
    changes: list[tuple[str, str, object, object]] = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{key}"
        if key not in old:
            changes.append((path, "added", None, new[key]))
        elif key not in new:
            changes.append((path, "removed", old[key], None))
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            changes.extend(diff(old[key], new[key], prefix=f"{path}."))
        elif old[key] != new[key]:
            changes.append((path, "changed", old[key], new[key]))
    return changes
