"""Human scores: each write checked, changed, audited in one transaction."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from .. import scoring
from ..audit import audit
from ..models import Job, Score
from ..text import clean

RATINGS = range(1, 6)
COMMENT_CHARS = 2000  # Score.reason's bound


class RatingRefused(ValueError):
    """A rating that cannot be given: out of 1–5, or of a job that has not ended."""


def rate(job: Job, user, rating: int, comment: str = "") -> Score:
    """`user`'s 1–5 rating of `job`'s output, with a comment: a new rating replaces the
    user's previous one. Needs agents.add_score; the job must have ended."""
    if not user.has_perm("agents.add_score"):
        raise PermissionDenied("Rating a job needs the permission to add scores.")
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATINGS:
        raise RatingRefused("A rating is a whole number from 1 to 5.")
    if not job.is_terminal:
        raise RatingRefused(f"Job #{job.pk} is {job.status}: rate it once it has ended.")
    comment = clean(comment or "").strip()[:COMMENT_CHARS]
    with transaction.atomic():
        score = scoring.rate_job(job, user, rating, comment)
        audit("rate_job", actor=user, job=job, detail=f"{rating}/5 {comment}".strip())
    return score
