"""The plan as a left-to-right graph: subtasks in columns by dependency depth, for an SVG."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.models import Subtask

NODE_WIDTH = 176
NODE_HEIGHT = 48
COLUMN_GAP = 64
ROW_GAP = 16
PADDING = 8


@dataclass(frozen=True)
class GraphNode:
    id: int
    key: str
    type: str
    status: str
    agent: str = ""


@dataclass(frozen=True)
class NodeBox:
    node: GraphNode
    x: int
    y: int
    w: int
    h: int
    column: int
    row: int
    depends_on: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class EdgePath:
    source: int
    target: int
    d: str
    back: bool = False


@dataclass(frozen=True)
class Layout:
    nodes: list[NodeBox]
    edges: list[EdgePath]
    width: int
    height: int

    @property
    def columns(self) -> int:
        return max((box.column for box in self.nodes), default=-1) + 1


def _back_edges(ids: list[int], children: dict[int, list[int]]) -> set[tuple[int, int]]:
    """Edges that close a cycle, found by an iterative depth-first search."""
    visiting, done = set(), set()
    back: set[tuple[int, int]] = set()
    for root in ids:
        if root in done:
            continue
        visiting.add(root)
        stack = [(root, iter(children[root]))]
        while stack:
            parent, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                visiting.discard(parent)
                done.add(parent)
            elif child in visiting:
                back.add((parent, child))
            elif child not in done:
                visiting.add(child)
                stack.append((child, iter(children[child])))
    return back


def _depths(ids: list[int], forward: list[tuple[int, int]]) -> dict[int, int]:
    """Longest path from a node without dependencies, over an acyclic edge list (Kahn)."""
    depth = dict.fromkeys(ids, 0)
    indegree = dict.fromkeys(ids, 0)
    children: dict[int, list[int]] = {i: [] for i in ids}
    for source, target in forward:
        children[source].append(target)
        indegree[target] += 1
    ready = [i for i in ids if indegree[i] == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            depth[child] = max(depth[child], depth[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return depth


def _curve(source: NodeBox, target: NodeBox) -> str:
    """A cubic curve from the right middle of the source to the left middle of the target."""
    sx, sy = source.x + source.w, source.y + source.h // 2
    tx, ty = target.x, target.y + target.h // 2
    bend = max(abs(tx - sx) // 2, COLUMN_GAP // 2)
    return f"M{sx},{sy} C{sx + bend},{sy} {tx - bend},{ty} {tx},{ty}"


def layout(nodes: list[GraphNode], edges: list[tuple[int, int]]) -> Layout:
    """Place nodes in columns by longest-path depth; edges are (dependency id, dependent id).

    Edges naming unknown nodes are ignored; an edge that closes a cycle does not add depth
    (it is kept, marked `back`, so the drawing still shows it).
    """
    ids = [n.id for n in nodes]
    by_id = {n.id: n for n in nodes}
    edges = list(dict.fromkeys((s, t) for s, t in edges if s in by_id and t in by_id))
    children: dict[int, list[int]] = {i: [] for i in ids}
    parents: dict[int, list[int]] = {i: [] for i in ids}
    for source, target in edges:
        children[source].append(target)
        parents[target].append(source)
    back = _back_edges(ids, children)
    depth = _depths(ids, [e for e in edges if e not in back])

    columns: dict[int, list[int]] = {}
    for node_id in ids:
        columns.setdefault(depth[node_id], []).append(node_id)
    row_of: dict[int, int] = {}
    order = {node_id: index for index, node_id in enumerate(ids)}

    def mean_parent_row(node_id: int) -> tuple[float, int]:
        rows = [row_of[p] for p in parents[node_id] if p in row_of]
        return (sum(rows) / len(rows) if rows else -1.0, order[node_id])

    for column in sorted(columns):
        # Rows follow the dependencies' rows, so edges cross less; placed left to right.
        for row, node_id in enumerate(sorted(columns[column], key=mean_parent_row)):
            row_of[node_id] = row

    boxes = {
        node_id: NodeBox(
            node=by_id[node_id],
            x=PADDING + depth[node_id] * (NODE_WIDTH + COLUMN_GAP),
            y=PADDING + row_of[node_id] * (NODE_HEIGHT + ROW_GAP),
            w=NODE_WIDTH,
            h=NODE_HEIGHT,
            column=depth[node_id],
            row=row_of[node_id],
            depends_on=tuple(by_id[p].key for p in parents[node_id]),
        )
        for node_id in ids
    }
    paths = [EdgePath(s, t, _curve(boxes[s], boxes[t]), back=(s, t) in back) for s, t in edges]
    if not boxes:
        return Layout(nodes=[], edges=[], width=0, height=0)
    ncols = max(columns) + 1
    nrows = max(len(c) for c in columns.values())
    return Layout(
        nodes=[boxes[i] for i in ids],
        edges=paths,
        width=2 * PADDING + ncols * NODE_WIDTH + (ncols - 1) * COLUMN_GAP,
        height=2 * PADDING + nrows * NODE_HEIGHT + (nrows - 1) * ROW_GAP,
    )


def plan_graph(subtasks: Iterable[Subtask]) -> Layout:
    """The layout of a job's subtasks; prefetch `depends_on` and select `agent` to avoid N+1."""
    subtasks = list(subtasks)
    nodes = [
        GraphNode(
            id=sub.pk,
            key=sub.key,
            type=sub.type,
            status=sub.status,
            agent=sub.agent.name if sub.agent_id else "",
        )
        for sub in subtasks
    ]
    edges = [(dep.pk, sub.pk) for sub in subtasks for dep in sub.depends_on.all()]
    return layout(nodes, edges)
