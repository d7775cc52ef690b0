"""Approval rules changed in the admin go through approvals.add_rule and remove_rule, as on
the pages: one audit row each, and the rules held in memory forgotten."""

import pytest

from agents.models import ApprovalRule

from .auditing import audit_rows

pytestmark = pytest.mark.django_db


def test_the_admin_adds_changes_and_deletes_rules_through_approvals(admin_client):
    admin_client.post("/admin/agents/approvalrule/add/", {"kind": "type", "name": "Coding"})
    rule = ApprovalRule.objects.get()
    assert rule.name == "coding"  # named as plans name types, as on the pages
    url = f"/admin/agents/approvalrule/{rule.pk}/"
    admin_client.post(url + "change/", {"kind": "tool", "name": "read_state"})
    rule = ApprovalRule.objects.get()
    assert (rule.kind, rule.name) == ("tool", "read_state")
    admin_client.post(f"/admin/agents/approvalrule/{rule.pk}/delete/", {"post": "yes"})
    assert not ApprovalRule.objects.exists()
    assert [row[:2] for row in audit_rows()] == [
        ("approval.add_rule", "alice"),
        ("approval.remove_rule", "alice"),
        ("approval.add_rule", "alice"),
        ("approval.remove_rule", "alice"),
    ]
