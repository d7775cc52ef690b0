"""The audit trail in the actions' tests: the rows written, and an audit that fails, which
shows the change it follows is rolled back with it (one transaction)."""

from __future__ import annotations

from agents.models import AuditEntry


class AuditFailed(Exception):
    pass


def audit_rows() -> list[tuple[str, str | None, str]]:
    """(action, actor's username, detail), oldest first."""
    entries = AuditEntry.objects.select_related("actor").order_by("pk")
    return [(e.action, e.actor.username if e.actor else None, e.detail) for e in entries]


def make_audit_fail(monkeypatch) -> None:
    def refuse(**fields) -> None:
        raise AuditFailed(fields["action"])

    monkeypatch.setattr(AuditEntry.objects, "create", refuse)
