"""The import rules of ARCHITECTURE.md, read from the source (tests/layers.py; `make imports`
prints the graph): the domain imports no face, faces import only the domain, and no circle
of modules stands but through a documented lazy import."""

from tests import layers


def test_the_graph_is_read():
    found = layers.edges()
    # Known edges, so a reader that finds nothing cannot pass the rules below.
    assert ("dashboard.views", "agents.models") in {(edge.source, edge.target) for edge in found}
    assert any(edge.lazy for edge in found)


def test_the_domain_imports_no_face_and_no_site():
    found = layers.edges()
    wrong = [
        f"{edge.source}:{edge.line} -> {edge.target}"
        for edge in found
        if layers.package_of(edge.source) == "agents" and layers.package_of(edge.target) != "agents"
    ]
    assert wrong == []


def test_a_domain_module_imports_only_its_layer_and_those_before():
    wrong = [
        f"{edge.source}:{edge.line} -> {edge.target}"
        for edge in layers.edges()
        if layers.package_of(edge.source) == "agents"
        and layers.agent_layer(edge.target) is not None
        and layers.agent_layer(edge.target) > layers.agent_layer(edge.source)
        and not edge.lazy
    ]
    assert wrong == []


def test_faces_import_only_the_domain():
    found = layers.edges()
    wrong = [
        f"{edge.source}:{edge.line} -> {edge.target}"
        for edge in found
        if layers.package_of(edge.source) in layers.FACES
        and layers.package_of(edge.target) not in {layers.package_of(edge.source)}
        and layers.package_of(edge.target) not in layers.FACE_MAY_IMPORT
    ]
    assert wrong == []


def test_no_circle_but_through_a_documented_lazy_import():
    found = [
        edge
        for edge in layers.edges()
        if (edge.source, edge.target) not in layers.LAZY_ALLOWED or not edge.lazy
    ]
    assert layers.circles(found) == []
    assert len(layers.LAZY_ALLOWED) <= 1


def test_a_circle_is_found():
    made_up = [
        layers.Edge("a", "b", 1, False),
        layers.Edge("b", "c", 1, True),
        layers.Edge("c", "a", 1, False),
        layers.Edge("c", "d", 1, False),
    ]
    assert layers.circles(made_up) == [["a", "b", "c"]]
    assert layers.circles(made_up, with_lazy=False) == []
