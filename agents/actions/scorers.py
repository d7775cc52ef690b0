"""Scorers: each write checked, changed, audited in one transaction.

Each action checks the user's permission itself (PermissionDenied), so no face can forget it;
`user=None` is the system acting. `fields` are a validated ScorerForm's `scorer_fields()`,
from whichever face. A scorer's slug comes from its first name and is kept when it is renamed.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from ..audit import audit
from ..models import Scorer

SLUG_CHARS = Scorer._meta.get_field("slug").max_length
# The scorer pages' own paths, which a scorer's slug must not take.
RESERVED_SLUGS = {"new"}


class ScorerNameTaken(ValueError):
    """Another scorer took the name meanwhile (the form checked it was free)."""


def _require(user, permission: str) -> None:
    if user is not None and not user.has_perm(f"agents.{permission}"):
        raise PermissionDenied(f"Your roles do not allow {permission.replace('_', ' ')}.")


def free_slug(name: str) -> str:
    """A slug for a new scorer named `name`: its name's, numbered if taken."""
    base = slugify(name)[: SLUG_CHARS - 6].strip("-") or "scorer"
    slug, number = base, 1
    while slug in RESERVED_SLUGS or Scorer.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


def create_scorer(fields: dict, *, user=None) -> Scorer:
    _require(user, "add_scorer")
    try:
        with transaction.atomic():
            scorer = Scorer.objects.create(
                **fields,
                slug=free_slug(fields["name"]),
                created_by=user if user is not None and user.pk else None,
            )
            audit("create_scorer", actor=user, detail=f"{scorer.slug} ({scorer.kind})")
    except IntegrityError:
        raise ScorerNameTaken(f"A scorer named {fields['name']} exists.") from None
    return scorer


def edit_scorer(scorer: Scorer, fields: dict, *, user=None) -> list[str]:
    """Save what changed; the names of the fields changed (none: nothing is written)."""
    _require(user, "change_scorer")
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
