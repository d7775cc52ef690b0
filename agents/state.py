"""The per-job blackboard: compare-and-set writes, every version kept with its author."""

from __future__ import annotations

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
    state, _ = SharedState.objects.get_or_create(job_id=job_id)
    for _ in range(MAX_CAS_ATTEMPTS):
        with transaction.atomic():
            current = SharedState.objects.values("version", "data").get(pk=state.pk)
            version = current["version"] + 1
            data = merge(current["data"], changes)
            won = SharedState.objects.filter(pk=state.pk, version=current["version"]).update(
                data=data, version=version
            )
            if won:
                SharedStateVersion.objects.create(
                    state_id=state.pk, version=version, data=data, changes=changes, author=author
                )
                events.state_changed(job_id)
                return version
    raise StateConflict(f"state of job {job_id}: no write won after {MAX_CAS_ATTEMPTS} tries")
