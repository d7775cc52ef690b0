"""Datasets and their cases: each write checked, changed, audited in one transaction.

Every action checks the user's permission itself (PermissionDenied), so no face can forget
it; `user=None` is the system acting. `fields` are a validated form's cleaned data
(agents.dataset_forms), from whichever face. A dataset's slug is derived from its name when
it is made and kept when it is renamed, so its links stay.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from .. import datasets
from ..audit import audit
from ..models import Case, Dataset, Job
from .checks import free_slug, require

# The dataset pages' own paths, which a dataset's slug must not take.
RESERVED_SLUGS = {"new", "from-board", "from-job"}


def _locked(dataset: Dataset) -> Dataset:
    return Dataset.objects.select_for_update().get(pk=dataset.pk)


def create_dataset(fields: dict, *, user=None) -> Dataset:
    """Raises IntegrityError (nothing written) when the name is taken meanwhile."""
    require(user, "add_dataset")
    with transaction.atomic():
        dataset = Dataset.objects.create(
            **fields,
            slug=free_slug(Dataset, fields["name"], fallback="dataset", reserved=RESERVED_SLUGS),
            created_by=user if user is not None and user.pk else None,
        )
        audit("create_dataset", actor=user, detail=dataset.slug)
    return dataset


def edit_dataset(dataset: Dataset, fields: dict, *, user=None) -> list[str]:
    """Save its changed name or description; the names of the fields changed."""
    require(user, "change_dataset")
    with transaction.atomic():
        locked = _locked(dataset)
        changed = [name for name, value in fields.items() if getattr(locked, name) != value]
        if not changed:
            return []
        for name in changed:
            setattr(locked, name, fields[name])
        locked.save(update_fields=[*changed, "updated_at"])
        audit("edit_dataset", actor=user, detail=f"{locked.slug}: {', '.join(changed)}")
    for name in changed:
        setattr(dataset, name, fields[name])
    return changed


def delete_dataset(dataset: Dataset, *, user=None) -> None:
    """Its cases go with it; experiments that ran it keep their own copies of them."""
    require(user, "delete_dataset")
    with transaction.atomic():
        count = dataset.cases.count()
        detail = f"{dataset.slug} ({dataset.name}, {count} cases)"
        dataset.delete()
        audit("delete_dataset", actor=user, detail=detail)


def add_case(dataset: Dataset, fields: dict, *, user=None) -> Case:
    """Raises datasets.TooManyCases when the dataset is full."""
    require(user, "add_case")
    with transaction.atomic():
        locked = _locked(dataset)
        datasets.check_room(locked, 1)
        case = Case.objects.create(dataset=locked, **fields)
        _touch(locked)
        audit("add_case", actor=user, detail=f"{locked.slug} #{case.pk}: {case.title}")
    return case


def edit_case(case: Case, fields: dict, *, user=None) -> list[str]:
    require(user, "change_case")
    with transaction.atomic():
        locked = Case.objects.select_for_update().select_related("dataset").get(pk=case.pk)
        changed = [name for name, value in fields.items() if getattr(locked, name) != value]
        if not changed:
            return []
        for name in changed:
            setattr(locked, name, fields[name])
            setattr(case, name, fields[name])
        locked.save(update_fields=changed)
        _touch(locked.dataset)
        audit(
            "edit_case",
            actor=user,
            detail=f"{locked.dataset.slug} #{locked.pk}: {', '.join(changed)}",
        )
    return changed


def delete_case(case: Case, *, user=None) -> None:
    require(user, "delete_case")
    with transaction.atomic():
        dataset = case.dataset
        detail = f"{dataset.slug} #{case.pk}: {case.title}"
        case.delete()
        _touch(dataset)
        audit("delete_case", actor=user, detail=detail)


def import_cases(dataset: Dataset, data: bytes, fmt: str, *, user=None) -> list[Case]:
    """Every case of the file, or none: datasets.ImportRefused lists each bad line, and
    datasets.TooManyCases says the dataset would overflow."""
    require(user, "add_case")
    with transaction.atomic():
        locked = _locked(dataset)
        cases = datasets.import_cases(locked, data, fmt)
        _touch(locked)
        audit("import_cases", actor=user, detail=f"{locked.slug}: {len(cases)} cases ({fmt})")
    return cases


def add_jobs(dataset: Dataset, jobs: Iterable[Job], *, user=None) -> tuple[list[Case], int]:
    """The completed ones of `jobs` (at most datasets.JOBS_MAX) as cases: (cases added, jobs
    skipped as not completed or already in the dataset)."""
    require(user, "add_case")
    with transaction.atomic():
        locked = _locked(dataset)
        added, skipped = datasets.cases_from_jobs(locked, jobs)
        if added:
            _touch(locked)
            ids = ", ".join(f"#{case.source_job_id}" for case in added[:20])
            more = f" and {len(added) - 20} more" if len(added) > 20 else ""
            job = added[0].source_job if len(added) == 1 else None
            audit(
                "add_jobs_to_dataset",
                actor=user,
                job=job,
                detail=f"{locked.slug}: jobs {ids}{more} ({skipped} skipped)",
            )
    return added, skipped


def _touch(dataset: Dataset) -> None:
    """Its cases changed: the dataset's updated_at says when."""
    dataset.save(update_fields=["updated_at"])
