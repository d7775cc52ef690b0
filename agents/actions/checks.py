"""What several actions check or make alike: a permission, a free slug."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils.text import slugify


def require(user, permission: str) -> None:
    """PermissionDenied unless `user` has `agents.<permission>` (None: the system itself)."""
    if user is not None and not user.has_perm(f"agents.{permission}"):
        raise PermissionDenied(f"Your roles do not allow {permission.replace('_', ' ')}.")


def free_slug(model: type[models.Model], name: str, *, fallback: str, reserved=()) -> str:
    """A slug for a new `model` row named `name`: its name's, numbered if taken (or one of
    `reserved`, which its pages' routes use)."""
    room = model._meta.get_field("slug").max_length - 6
    base = slugify(name)[:room].strip("-") or fallback
    slug, number = base, 1
    while slug in reserved or model.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug
