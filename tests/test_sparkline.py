from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template

from agents.models import Agent, Job, LLMCall
from dashboard.sparkline import agent_series, sparkline_svg

NOW = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)


def call(agent, minutes_ago: float, latency: float = 1.0, error: str = "") -> LLMCall:
    job = Job.objects.first() or Job.objects.create(title="J", description="d")
    row = LLMCall.objects.create(
        agent=agent, job=job, purpose="subtask", model="m", latency_s=latency, error=error
    )
    LLMCall.objects.filter(pk=row.pk).update(created_at=NOW - timedelta(minutes=minutes_ago))
    return row


@pytest.fixture
def agents(db):
    return [
        Agent.objects.create(name=f"Agent {i}", slug=f"agent-{i}", specialties=["x"])
        for i in range(2)
    ]


def test_calls_fall_into_five_minute_buckets_ending_now(agents):
    alpha, beta = agents
    call(alpha, 0, latency=2.0)  # the current minute: the last bucket
    call(alpha, 0.2, latency=4.0)
    call(alpha, 7, latency=1.0)  # 11:53:30 falls in the bucket 11:51–11:56
    call(alpha, 59, latency=3.0)  # the first bucket
    call(beta, 30, latency=5.0)  # 11:30:30, in 11:26–11:31
    series = agent_series([alpha.pk, beta.pk], now=NOW)
    assert series[alpha.pk]["calls"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]
    assert series[alpha.pk]["latency"] == [3.0] + [None] * 9 + [1.0, 3.0]
    assert series[beta.pk]["calls"][5] == 1
    assert series[beta.pk]["latency"][5] == 5.0


def test_failed_calls_count_as_calls_but_not_in_the_latency(agents):
    alpha, _ = agents
    call(alpha, 1, latency=2.0)
    call(alpha, 1, latency=30.0, error="timeout")
    call(alpha, 2, latency=9.0, error="HTTP 500")
    series = agent_series([alpha.pk], now=NOW)
    assert series[alpha.pk]["calls"][-1] == 3
    assert series[alpha.pk]["latency"][-1] == 2.0


def test_calls_outside_the_window_or_of_other_agents_are_left_out(agents):
    alpha, beta = agents
    call(alpha, 61)
    call(alpha, -2)
    call(beta, 1)
    series = agent_series([alpha.pk], now=NOW)
    assert set(series) == {alpha.pk}
    assert series[alpha.pk] == {"latency": [None] * 12, "calls": [0] * 12}


def test_no_agents_means_no_query():
    # Without the django_db mark any query would raise.
    assert agent_series([]) == {}


@pytest.mark.parametrize("how_many", [1, 5, 20])
def test_one_query_whatever_the_number_of_agents(db, django_assert_num_queries, how_many):
    team = [
        Agent.objects.create(name=f"A{i}", slug=f"a-{i}", specialties=["x"])
        for i in range(how_many)
    ]
    for agent in team:
        call(agent, 3)
    with django_assert_num_queries(1):
        series = agent_series([a.pk for a in team], now=NOW)
    assert all(s["calls"][-1] == 1 for s in series.values())


def test_the_window_must_split_into_whole_minutes():
    with pytest.raises(ValueError):
        agent_series([1], minutes=60, buckets=7)


def test_a_sparkline_is_a_labelled_polyline():
    svg = sparkline_svg([1.0, 2.0, 4.0], width=100, height=20, label="Latency (s)")
    assert svg.startswith('<svg class="sparkline" role="img" aria-label="Latency (s): latest 4"')
    assert '<polyline points="2,14 50,10 98,2"/>' in svg


def test_none_leaves_a_gap_and_a_lone_point_is_a_dot():
    svg = sparkline_svg([1.0, 1.0, None, 2.0, None], width=100, height=20)
    assert svg.count("<polyline") == 1
    assert svg.count("<circle") == 1
    assert 'aria-label="latest 2"' in svg


def test_a_sparkline_without_data_says_so():
    assert 'aria-label="Calls: no data"' in sparkline_svg([None, None], label="Calls")
    assert 'aria-label="no data"' in sparkline_svg([])
    assert "<polyline" in sparkline_svg([0, 0, 0])


def test_the_label_is_escaped():
    svg = sparkline_svg([1.0, 2.0], label='<script>"x"</script>')
    assert "<script>" not in svg
    assert "&lt;script&gt;&quot;x&quot;&lt;/script&gt;" in svg


def test_the_template_tag_renders_the_svg():
    html = Template('{% load rendering %}{% sparkline values "Calls" %}').render(
        Context({"values": [0, 3, 1]})
    )
    assert html.startswith('<svg class="sparkline" role="img" aria-label="Calls: latest 1"')
