"""The project's import graph, read from the source with `ast`: which package imports which,
and every circle of modules. `make imports` prints it; tests/test_layers.py holds the rules.

An import inside a function ("lazy") is an edge like any other, marked as such: a circle
is allowed only through one of LAZY_ALLOWED, each with the reason written beside it.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agents", "dashboard", "api", "stream", "webhooks", "orchestrator_site", "baton_cli")
FACES = ("dashboard", "api", "stream", "webhooks")
# What a face may import of the project: the domain (settings come through django.conf).
FACE_MAY_IMPORT = {"agents"}
# The domain's layers, as ARCHITECTURE.md's table lists them: a module of agents/ imports
# only its own layer and those before it. A new module must be placed here.
AGENT_LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "text", "jsonvalues", "statemerge", "tokens", "planning", "allocation", "metrics",
        "roles", "addresses", "outbound", "process", "redisconn", "threads", "telemetry",
        "enqueue", "offline", "llm", "limiter", "coalesce", "events", "streaming",
        "judging", "evalstats", "tags", "placeholders", "crontimes",
    ),
    ("models", "credentials", "stats_models"),
    ("audit", "outbox", "state", "versions", "signals", "series", "team", "datasets", "quality",
     "job_templates", "idempotency", "bulk", "stats"),
    ("calls", "lifecycle", "takebacks", "leases"),
    ("hotpath", "dispatch", "approvals", "tools", "mcp", "toolloop", "rerun", "scoring"),
    ("steps", "recovery", "experiments", "experiment_reports"),
    ("actions", "schedules"),
    ("forms", "queries", "dataset_forms", "experiment_forms", "scorer_forms", "template_forms",
     "schedule_forms", "bulk_forms"),
    ("tasks", "admin_base", "admin_mcp", "admin_evaluation", "admin_recurring", "admin", "apps",
     "management"),
)  # fmt: skip
# The one documented lazy import that closes a circle (module, imported module): none today.
LAZY_ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module `name` loads: itself, or the longest known prefix of it."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The modules an import statement loads (before resolving them against the project)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    if node.level:
        base = f"{base}.{node.module}" if node.module else base
    else:
        base = node.module or ""
    # `from package import name` loads the submodule `name` when there is one, else package.
    return [f"{base}.{alias.name}" for alias in node.names]


def edges(known: dict[str, Path] | None = None) -> list[Edge]:
    known = known or modules()
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        lazy_nodes = {
            id(inner)
            for outer in ast.walk(tree)
            if isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef)
            for inner in ast.walk(outer)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets = {_resolve(name, known) for name in _imported(node, module, is_package)}
            for target in targets - {None, module}:
                found.append(Edge(module, target, node.lineno, id(node) in lazy_nodes))
    return found


def package_of(module: str) -> str:
    return module.partition(".")[0]


def agent_layer(module: str) -> int | None:
    """The layer of a module of agents/ (a package's submodules share its layer)."""
    parts = module.split(".")
    if parts[0] != "agents" or len(parts) == 1:
        return None
    for number, names in enumerate(AGENT_LAYERS):
        if parts[1] in names:
            return number
    raise LookupError(f"{module} is in no layer of tests/layers.py AGENT_LAYERS")


def package_graph(found: list[Edge]) -> dict[str, set[str]]:
    graph = defaultdict(set)
    for edge in found:
        if package_of(edge.source) != package_of(edge.target):
            graph[package_of(edge.source)].add(package_of(edge.target))
    return graph


def circles(found: list[Edge], *, with_lazy: bool = True) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    graph = defaultdict(set)
    for edge in found:
        if with_lazy or not edge.lazy:
            graph[edge.source].add(edge.target)
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in list(graph):
        if node not in index:
            visit(node)
    return groups


def main() -> None:
    found = edges()
    print("Packages and what they import of the project:")
    for package, targets in sorted(package_graph(found).items()):
        print(f"  {package:18} -> {', '.join(sorted(targets))}")
    lazy = [edge for edge in found if edge.lazy]
    print(f"\nLazy imports (inside a function): {len(lazy)}")
    for edge in lazy:
        note = LAZY_ALLOWED.get((edge.source, edge.target), "")
        print(f"  {edge.source}:{edge.line} -> {edge.target}" + (f"  ({note})" if note else ""))
    groups = circles(found)
    print(f"\nCircles of modules (lazy imports counted): {len(groups)}")
    for group in groups:
        print("  " + " <-> ".join(group))


if __name__ == "__main__":
    main()
