from __future__ import annotations

from ..models import AuditEntry


def audit(action: str, *, actor=None, job=None, subtask=None, agent=None, detail="") -> None:
    """The one writer of AuditEntry rows: every action calls it inside its transaction."""
    AuditEntry.objects.create(
        action=action, actor=actor, job=job, subtask=subtask, agent=agent, detail=detail[:2000]
    )
