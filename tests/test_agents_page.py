"""The agents page: each agent's load, spend by model over the last day, a constant cost."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, LLMCall

from .history import make_history

pytestmark = pytest.mark.django_db


def page_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/agents/").status_code == 200
    return len(queries)


def test_its_query_count_does_not_grow_with_the_history(client, viewer):
    make_history(1)
    few = page_queries(client)
    make_history(60)
    assert page_queries(client) == few


def test_each_agents_load_is_its_queued_and_working_subtasks(client, viewer):
    make_history(5)
    agents = client.get("/agents/").context["agents"]
    assert {a.slug: a.load for a in agents} == {
        a.slug: a.current_load() for a in Agent.objects.all()
    }
    assert sum(a.load for a in agents) == 10  # two of each job's three subtasks are in flight


def test_spend_by_model_counts_the_last_day(client, viewer):
    make_history(4)
    old = LLMCall.objects.filter(model="gpt-4.1").values_list("pk", flat=True)[:1]
    LLMCall.objects.filter(pk__in=list(old)).update(created_at=timezone.now() - timedelta(days=2))
    rows = {row["model"]: row["calls"] for row in client.get("/agents/").context["by_model"]}
    recent = LLMCall.objects.filter(created_at__gte=timezone.now() - timedelta(days=1))
    assert rows == {
        model: recent.filter(model=model).count()
        for model in recent.values_list("model", flat=True).distinct()
    }
    assert sum(rows.values()) == LLMCall.objects.count() - 1
