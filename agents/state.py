"""The per-job blackboard: compare-and-set writes, every version kept with its author."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from . import events
from .models import SharedState, SharedStateVersion

MAX_CAS_ATTEMPTS = 100


class StateConflict(RuntimeError):
    pass


def merge(data: dict, changes: dict) -> dict:
    """Top-level keys are replaced, except dicts, which are merged one level deep."""
    merged = dict(data)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def write(job_id: int, changes: dict, *, author: str) -> int:
    """Apply `changes` as a new version and return it. A lost race re-reads and re-applies."""
    return update(job_id, lambda data: changes, author=author)


def update(job_id: int, change: Callable[[dict], dict], *, author: str) -> int:
    """Apply `change(current data)` (which returns the changes) as a new version."""
    for _ in range(MAX_CAS_ATTEMPTS):
        # No savepoint inside a caller's transaction: a lost race writes nothing to undo.
        with transaction.atomic(savepoint=False):
            current = SharedState.objects.filter(job_id=job_id).values("pk", "version", "data")
            row = current.first()
            if row is None:
                SharedState.objects.get_or_create(job_id=job_id)
                continue
            changes = change(row["data"])
            version = row["version"] + 1
            data = merge(row["data"], changes)
            won = SharedState.objects.filter(pk=row["pk"], version=row["version"]).update(
                data=data, version=version
            )
            if won:
                SharedStateVersion.objects.create(
                    state_id=row["pk"], version=version, data=data, changes=changes, author=author
                )
                events.state_changed(job_id)
                return version
    raise StateConflict(f"state of job {job_id}: no write won after {MAX_CAS_ATTEMPTS} tries")


def record_result(job_id: int, key: str, result: str, *, author: str) -> int:
    """A subtask's result into `results`, and the subtask out of `pending_tasks`."""

    def change(data: dict) -> dict:
        pending = [t for t in data.get("pending_tasks", []) if t.get("id") != key]
        return {"results": {key: result}, "pending_tasks": pending}

    return update(job_id, change, author=author)


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
