import re

import pytest
from django.template.loader import render_to_string

from agents.models import Agent, Job, Subtask
from dashboard.graph import COLUMN_GAP, NODE_WIDTH, PADDING, GraphNode, layout, plan_graph


def node(id: int, key: str = "", status: str = "waiting") -> GraphNode:
    return GraphNode(id=id, key=key or f"s{id}", type="research", status=status)


def columns(result) -> dict[str, int]:
    return {box.node.key: box.column for box in result.nodes}


def test_an_empty_plan_has_no_nodes_and_no_size():
    result = layout([], [])
    assert result.nodes == [] and result.edges == []
    assert (result.width, result.height) == (0, 0)


def test_nodes_without_dependencies_share_the_first_column():
    result = layout([node(1), node(2), node(3)], [])
    assert columns(result) == {"s1": 0, "s2": 0, "s3": 0}
    assert [box.row for box in result.nodes] == [0, 1, 2]
    assert len({box.y for box in result.nodes}) == 3


def test_columns_follow_the_longest_path_from_a_root():
    # 1 → 2 → 3, and 1 → 3 directly: 3 still sits after 2.
    result = layout([node(1), node(2), node(3), node(4)], [(1, 2), (2, 3), (1, 3), (4, 3)])
    assert columns(result) == {"s1": 0, "s2": 1, "s3": 2, "s4": 0}
    x = {box.node.key: box.x for box in result.nodes}
    assert x["s1"] == PADDING
    assert x["s3"] == PADDING + 2 * (NODE_WIDTH + COLUMN_GAP)
    assert result.width == 2 * PADDING + 3 * NODE_WIDTH + 2 * COLUMN_GAP


def test_each_edge_runs_from_the_right_of_its_dependency_to_the_left_of_its_dependent():
    result = layout([node(1), node(2)], [(1, 2)])
    (edge,) = result.edges
    source, target = result.nodes
    assert (edge.source, edge.target, edge.back) == (1, 2, False)
    numbers = [int(n) for n in re.findall(r"-?\d+", edge.d)]
    assert edge.d.startswith("M") and " C" in edge.d
    assert numbers[:2] == [source.x + source.w, source.y + source.h // 2]
    assert numbers[-2:] == [target.x, target.y + target.h // 2]


def test_a_node_knows_the_keys_it_depends_on():
    result = layout([node(1, "fetch"), node(2, "sum"), node(3, "write")], [(1, 3), (2, 3)])
    assert result.nodes[2].depends_on == ("fetch", "sum")


def test_unknown_and_duplicate_edges_are_ignored():
    result = layout([node(1), node(2)], [(1, 2), (1, 2), (1, 99), (42, 2)])
    assert [(e.source, e.target) for e in result.edges] == [(1, 2)]


def test_a_cycle_ends_and_its_closing_edge_adds_no_depth():
    result = layout([node(1), node(2), node(3)], [(1, 2), (2, 3), (3, 1)])
    assert columns(result) == {"s1": 0, "s2": 1, "s3": 2}
    assert [e.back for e in result.edges] == [False, False, True]


def test_a_subtask_that_depends_on_itself_is_drawn_once():
    result = layout([node(1)], [(1, 1)])
    assert columns(result) == {"s1": 0}
    assert [e.back for e in result.edges] == [True]


def test_a_long_chain_does_not_hit_the_recursion_limit():
    n = 3000
    result = layout([node(i) for i in range(n)], [(i, i + 1) for i in range(n - 1)])
    assert result.nodes[-1].column == n - 1


@pytest.fixture
def plan(db):
    writer = Agent.objects.create(name="Writer <b>", slug="writer", specialties=["write"])
    job = Job.objects.create(title="Report", description="Write a report")
    fetch = Subtask.objects.create(job=job, key="fetch", type="research", status="completed")
    check = Subtask.objects.create(job=job, key="check<script>", type="review", status="failed")
    write = Subtask.objects.create(
        job=job, key="write", type="write", status="working", agent=writer
    )
    write.depends_on.set([fetch, check])
    return job


def render(job, **context) -> str:
    subtasks = job.subtasks.select_related("agent").prefetch_related("depends_on")
    return render_to_string(
        "dashboard/_plan_graph.html", {"graph": plan_graph(subtasks), **context}
    )


def test_the_graph_has_one_node_per_subtask_coloured_by_status(plan, django_assert_num_queries):
    subtasks = list(plan.subtasks.select_related("agent").prefetch_related("depends_on"))
    with django_assert_num_queries(0):
        graph = plan_graph(subtasks)
    html = render_to_string("dashboard/_plan_graph.html", {"graph": graph})
    ids = {s.key: s.pk for s in subtasks}
    assert f'<g class="node status-completed" id="graph-node-{ids["fetch"]}"' in html
    assert f'<g class="node status-working" id="graph-node-{ids["write"]}"' in html
    assert html.count('<path class="edge"') == 2
    assert '<svg role="img" aria-labelledby="plan-graph-title"' in html
    assert '<title id="plan-graph-title">' in html


def test_the_graph_escapes_keys_and_agent_names(plan):
    html = render(plan)
    assert "<script>" not in html and "<b>" not in html
    assert "check&lt;script&gt;" in html
    assert "write · Writer &lt;b&gt;" in html


def test_screen_readers_get_each_subtask_its_status_and_dependencies(plan):
    html = render(plan)
    caption = html[html.index("<figcaption") : html.index("</figcaption>")]
    assert "fetch (research): completed" in caption
    assert "write (write, Writer &lt;b&gt;): working; after fetch, check&lt;script&gt;" in caption


def test_the_whole_graph_can_be_sent_out_of_band(plan):
    assert '<figure id="plan-graph" class="plan-graph" hx-swap-oob="true">' in render(
        plan, oob=True
    )
    assert "hx-swap-oob" not in render(plan)


def test_an_empty_plan_says_so(db):
    job = Job.objects.create(title="Fresh", description="Nothing planned yet")
    html = render(job)
    assert 'id="plan-graph"' in html
    assert "<svg" not in html
    assert "No plan yet" in html
