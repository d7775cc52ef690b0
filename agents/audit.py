"""The one writer of AuditEntry rows (re-exported as `agents.actions.audit`).

A module of its own so that both the actions and the modules they call (approvals) can
import it without importing each other.
"""

from __future__ import annotations

from .models import AuditEntry

DETAIL_CHARS = 2000


def audit(
    action: str,
    *,
    actor=None,
    job=None,
    subtask=None,
    agent=None,
    detail="",
    detail_chars: int = DETAIL_CHARS,
) -> None:
    """Record who did what: every action calls it inside the transaction of its change.

    A bulk action's one entry lists every job it touched: it passes a larger `detail_chars`.
    """
    AuditEntry.objects.create(
        action=action,
        actor=actor,
        job=job,
        subtask=subtask,
        agent=agent,
        detail=detail[:detail_chars],
    )


def audit_system(action: str, rows: list[dict], detail: str) -> None:
    """What the system did on its own (the reconciler's re-sends), one row per target, in
    one statement: `rows` give each entry's job_id and/or subtask_id."""
    AuditEntry.objects.bulk_create(
        [AuditEntry(action=action, detail=detail[:DETAIL_CHARS], **row) for row in rows]
    )
