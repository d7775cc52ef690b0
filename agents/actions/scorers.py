"""Scorers: each write checked, changed, audited in one transaction.

Each action checks the user's permission itself (PermissionDenied), so no face can forget it;
`user=None` is the system acting. `fields` are a validated ScorerForm's `scorer_fields()`,
from whichever face. A scorer's slug comes from its first name and is kept when it is renamed.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from ..audit import audit
from ..models import Scorer
from .checks import free_slug, require

# The scorer pages' own paths, which a scorer's slug must not take.
RESERVED_SLUGS = {"new"}


class ScorerNameTaken(ValueError):
    """Another scorer took the name meanwhile (the form checked it was free)."""


def create_scorer(fields: dict, *, user=None) -> Scorer:
    require(user, "add_scorer")
    try:
        with transaction.atomic():
            scorer = Scorer.objects.create(
                **fields,
                slug=free_slug(Scorer, fields["name"], fallback="scorer", reserved=RESERVED_SLUGS),
                created_by=user if user is not None and user.pk else None,
            )
            audit("create_scorer", actor=user, detail=f"{scorer.slug} ({scorer.kind})")
    except IntegrityError:
        raise ScorerNameTaken(f"A scorer named {fields['name']} exists.") from None
    return scorer


def edit_scorer(scorer: Scorer, fields: dict, *, user=None) -> list[str]:
    """Save what changed; the names of the fields changed (none: nothing is written)."""
    require(user, "change_scorer")
    try:
        with transaction.atomic():
            scorer = Scorer.objects.select_for_update().get(pk=scorer.pk)
            changed = [name for name, value in fields.items() if getattr(scorer, name) != value]
            if not changed:
                return []
            for name in changed:
                setattr(scorer, name, fields[name])
            scorer.save(update_fields=changed)
            audit("edit_scorer", actor=user, detail=f"{scorer.slug}: {', '.join(changed)}")
    except IntegrityError:
        raise ScorerNameTaken(f"A scorer named {fields.get('name')} exists.") from None
    return changed
