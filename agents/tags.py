"""Tags on jobs and templates: short lowercase words, stored space-separated in one column so
the board filters by one on SQLite and PostgreSQL alike (`tagged`)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db.models import Q

TAG_CHARS = 40
MAX_TAGS = 10
TAGS_CHARS = MAX_TAGS * (TAG_CHARS + 1)
_TAG = re.compile(r"[a-z0-9][a-z0-9._:-]*")


def parse(raw: str | list | tuple | None) -> list[str]:
    """Tags from a form's text (commas or spaces between them) or a list, lowercased, in
    order, each once. Raises ValidationError naming what is wrong."""
    if raw is None:
        return []
    if isinstance(raw, str):
        items = raw.replace(",", " ").split()
    elif isinstance(raw, (list, tuple)):
        if not all(isinstance(item, str) for item in raw):
            raise ValidationError("Tags are words: give a list of strings.")
        items = [part for item in raw for part in item.replace(",", " ").split()]
    else:
        raise ValidationError("Tags are words: give a list of strings or one comma-separated one.")
    tags: list[str] = []
    for item in items:
        tag = item.lower()
        if len(tag) > TAG_CHARS:
            raise ValidationError(
                f"“{tag[:TAG_CHARS]}…” is too long: a tag has at most {TAG_CHARS} characters."
            )
        if not _TAG.fullmatch(tag):
            raise ValidationError(
                f"“{tag}” is not a tag: use letters, digits and . _ : - "
                "(starting with a letter or digit)."
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} tags (there are {len(tags)}).")
    return tags


def as_text(tags: list[str]) -> str:
    """The column's value for `parse`d tags."""
    return " ".join(tags)


def tagged(tag: str, field: str = "tags") -> Q:
    """Rows carrying `tag` (one word, as `parse` gives it) in the space-separated `field`."""
    return (
        Q(**{field: tag})
        | Q(**{f"{field}__startswith": f"{tag} "})
        | Q(**{f"{field}__endswith": f" {tag}"})
        | Q(**{f"{field}__contains": f" {tag} "})
    )
