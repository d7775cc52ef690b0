"""Experiments: each write checked, changed, audited in one transaction. `start_experiment`
takes a valid ExperimentForm's cleaned data, from whichever face."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import transaction

from .. import experiments
from ..audit import audit
from ..models import Dataset, Experiment, Scorer


class ExperimentRefused(ValueError):
    """An experiment that cannot start as asked (its dataset emptied meanwhile...)."""


def start_experiment(
    *,
    user,
    name: str,
    dataset: Dataset,
    scorers: list[Scorer],
    versions: dict[str, int],
    budget_tokens: int | None = None,
    budget_cost: Decimal | None = None,
    concurrency: int = 4,
) -> Experiment:
    """Start running `dataset` against the chosen agent versions; its first cases start
    now. Needs agents.add_experiment."""
    if not user.has_perm("agents.add_experiment"):
        raise PermissionDenied("Running an experiment needs the permission to add experiments.")
    if budget_tokens is not None and budget_tokens <= 0:
        raise ExperimentRefused("A token budget must be positive.")
    if budget_cost is not None and budget_cost <= 0:
        raise ExperimentRefused("A money budget must be positive.")
    with transaction.atomic():
        if not dataset.cases.exists():
            raise ExperimentRefused(f"{dataset.name} has no cases.")
        experiment = experiments.start(
            dataset=dataset,
            name=name,
            scorers=scorers,
            agent_versions=versions,
            budget_tokens=budget_tokens,
            budget_cost=budget_cost,
            concurrency=concurrency,
            actor=user,
        )
        pinned = experiments.format_versions(versions) or "current versions"
        detail = f"#{experiment.pk} {experiment.name}: {dataset.name} on {pinned}"
        audit("start_experiment", actor=user, detail=detail)
    return experiment


def cancel_experiment(experiment: Experiment, *, user) -> bool:
    """Cancel a running experiment and its running cases; False when it had ended. Needs
    agents.change_experiment."""
    if not user.has_perm("agents.change_experiment"):
        raise PermissionDenied("Cancelling an experiment needs the permission to change it.")
    with transaction.atomic():
        if not experiments.cancel(experiment, actor=user):
            return False
        audit("cancel_experiment", actor=user, detail=f"#{experiment.pk} {experiment.name}")
    return True
