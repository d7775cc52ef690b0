"""Every model is administrable; system-written records are read only."""

import pytest
from django.contrib.auth.models import User

from agents import team

pytestmark = pytest.mark.django_db

PAGES = ["agent", "job", "subtask", "llmcall", "modelprice", "sharedstate", "auditentry"]


@pytest.mark.parametrize("model", PAGES)
def test_each_changelist_opens(admin_client, model):
    team.seed()
    assert admin_client.get(f"/admin/agents/{model}/").status_code == 200


@pytest.mark.parametrize("model", ["llmcall", "auditentry"])
def test_records_cannot_be_added_by_hand(admin_client, model):
    assert admin_client.get(f"/admin/agents/{model}/add/").status_code == 403


def test_agents_can_be_disabled_in_bulk(admin_client):
    team.seed()
    from agents.models import Agent

    ids = list(Agent.objects.values_list("pk", flat=True))
    admin_client.post(
        "/admin/agents/agent/", {"action": "disable", "_selected_action": ids}, follow=True
    )
    assert not Agent.objects.filter(enabled=True).exists()
    assert User.objects.get(username="admin").auditentry_set.count() == len(ids)
