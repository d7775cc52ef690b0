import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents import offline, planning
from agents.planning import Plan, PlanError, parse_plan

TEAM = [("researcher", ["research"]), ("coder", ["coding"]), ("reviewer", ["review"])]


def sub(id, type="research", description="do it", **extra) -> dict:
    return {"id": id, "type": type, "payload": {"description": description}, **extra}


def plan_json(*subtasks: dict) -> str:
    return json.dumps({"subtasks": list(subtasks)})


def test_it_parses_the_offline_models_plan():
    messages = planning.decomposition_messages("Build a thing", "Details.", TEAM, 6)
    plan = parse_plan(offline.respond(messages), max_subtasks=6)
    assert [(s.key, s.type, s.assign_to) for s in plan.subtasks] == [
        ("research", "research", "researcher"),
        ("coding", "coding", "coder"),
        ("review", "review", "reviewer"),
    ]
    assert [s.depends_on for s in plan.subtasks] == [[], ["research"], ["coding"]]
    assert "Build a thing" in plan.subtasks[0].description
    assert plan.notes == []


def test_it_reads_json_in_a_code_fence():
    text = "Here you go:\n```json\n" + plan_json(sub("a"), sub("b")) + "\n```\nGood luck!"
    assert [s.key for s in parse_plan(text).subtasks] == ["a", "b"]


def test_it_reads_json_wrapped_in_prose():
    text = "Sure! The plan is " + plan_json(sub("a", depends_on=[])) + " Let me know."
    plan = parse_plan(text)
    assert [s.key for s in plan.subtasks] == ["a"]
    assert plan.subtasks[0].description == "do it"


def test_it_repairs_a_trailing_comma():
    text = '{"subtasks": [{"id": "a", "type": "research", "payload": {"description": "x"}},]}'
    assert [s.key for s in parse_plan(text).subtasks] == ["a"]


def test_it_repairs_a_missing_closing_brace():
    text = '{"subtasks": [{"id": "a", "type": "coding", "payload": {"description": "x"}}]'
    plan = parse_plan(text)
    assert [(s.key, s.type) for s in plan.subtasks] == [("a", "coding")]


def test_it_accepts_a_bare_list():
    text = json.dumps([sub("a"), sub("b", depends_on=["a"])])
    plan = parse_plan(text)
    assert [(s.key, s.depends_on) for s in plan.subtasks] == [("a", []), ("b", ["a"])]


def test_numeric_dependencies_refer_to_positions():
    text = plan_json(sub("first"), sub("second"), sub("third", depends_on=[1, "2"]))
    assert parse_plan(text).subtasks[2].depends_on == ["first", "second"]


def test_a_dangling_dependency_is_dropped_with_a_note():
    plan = parse_plan(plan_json(sub("a"), sub("b", depends_on=["a", "ghost"])))
    assert plan.subtasks[1].depends_on == ["a"]
    assert any("ghost" in note for note in plan.notes)


def test_a_self_dependency_is_dropped():
    plan = parse_plan(plan_json(sub("a", depends_on=["a"])))
    assert plan.subtasks[0].depends_on == []
    assert plan.notes


def test_a_cycle_is_an_error():
    text = plan_json(
        sub("a", depends_on=["c"]), sub("b", depends_on=["a"]), sub("c", depends_on=["b"])
    )
    with pytest.raises(PlanError, match="cycle"):
        parse_plan(text)


def test_too_many_subtasks_are_truncated_with_a_note():
    plan = parse_plan(plan_json(*[sub(f"s{i}") for i in range(5)]), max_subtasks=3)
    assert [s.key for s in plan.subtasks] == ["s0", "s1", "s2"]
    assert any("3 of 5" in note for note in plan.notes)


def test_a_missing_type_is_an_error():
    with pytest.raises(PlanError, match="type"):
        parse_plan(plan_json({"id": "a", "payload": {"description": "x"}}))


def test_a_missing_description_is_an_error():
    with pytest.raises(PlanError, match="description"):
        parse_plan(plan_json({"id": "a", "type": "research", "payload": {}}))


@pytest.mark.parametrize("text", ["", "   ", "I could not think of a plan, sorry."])
def test_text_without_json_is_an_error(text):
    with pytest.raises(PlanError):
        parse_plan(text)


def test_an_empty_subtask_list_is_an_error():
    with pytest.raises(PlanError, match="subtasks"):
        parse_plan('{"subtasks": []}')


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("implementation", "coding"), ("Code", "coding"), ("QA", "review"), ("analysis", "research")],
)
def test_type_synonyms_are_normalised(raw, expected):
    assert parse_plan(plan_json(sub("a", type=raw))).subtasks[0].type == expected


def test_duplicate_ids_are_renamed():
    plan = parse_plan(plan_json(sub("a"), sub("a")))
    keys = [s.key for s in plan.subtasks]
    assert len(set(keys)) == 2
    assert plan.notes


def test_a_renamed_duplicate_does_not_take_an_existing_id():
    plan = parse_plan(plan_json(sub("a-3"), sub("a"), sub("a")))
    keys = [s.key for s in plan.subtasks]
    assert len(set(keys)) == 3


def test_keys_and_hints_fit_their_columns():
    long = "x" * 70
    plan = parse_plan(plan_json(sub(long, assign_to="y" * 70), sub(long)))
    assert all(len(s.key) <= 64 for s in plan.subtasks)
    assert len({s.key for s in plan.subtasks}) == 2
    assert len(plan.subtasks[0].assign_to) <= 50


def test_a_dependency_on_a_long_id_is_kept():
    long = "x" * 70
    plan = parse_plan(plan_json(sub(long), sub("b", depends_on=[long])))
    assert plan.subtasks[1].depends_on == [plan.subtasks[0].key]
    assert plan.notes == []


def assert_valid(plan: Plan) -> None:
    keys = [s.key for s in plan.subtasks]
    assert plan.subtasks
    assert all(keys) and len(set(keys)) == len(keys)
    assert all(len(k) <= 64 for k in keys)  # Subtask.key's max_length
    for s in plan.subtasks:
        assert s.type and s.description.strip()
        assert len(s.type) <= 50 and len(s.assign_to) <= 50
        assert set(s.depends_on) <= set(keys)
        assert s.key not in s.depends_on
    done: set[str] = set()
    remaining = {s.key: set(s.depends_on) for s in plan.subtasks}
    while remaining:
        ready = [k for k, deps in remaining.items() if deps <= done]
        assert ready, "the dependencies form a cycle"
        done.update(ready)
        for k in ready:
            del remaining[k]


def parse_or_plan_error(text: str) -> None:
    try:
        plan = parse_plan(text, max_subtasks=6)
    except PlanError:
        return
    assert_valid(plan)


@given(st.text())
def test_any_text_gives_a_valid_plan_or_a_plan_error(text):
    parse_or_plan_error(text)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.sampled_from(["", "a", "A", "a-2", "a-3", "1", "2", "research", "implementation", " ", "x"]),
    st.text(max_size=8),
)
keys = st.sampled_from(
    ["subtasks", "id", "type", "payload", "description", "depends_on", "assign_to", "x"]
)
jsonish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=30,
)
# Mostly well-formed subtasks, so that the checks after parsing get exercised too.
ids = st.one_of(st.sampled_from(["a", "a-2", "a-3", "1", "2", "", "x" * 70]), scalars)
subtask_like = st.fixed_dictionaries(
    {
        "id": ids,
        "type": st.one_of(st.sampled_from(["research", "coding", "qa"]), scalars),
        "payload": st.one_of(st.fixed_dictionaries({"description": st.text(max_size=5)}), jsonish),
    },
    optional={
        "depends_on": st.one_of(ids, st.lists(ids, max_size=4)),
        "assign_to": st.one_of(ids, scalars),
        "x": jsonish,
    },
)
plan_like = st.one_of(
    jsonish,
    st.lists(subtask_like, max_size=8),
    st.fixed_dictionaries({"subtasks": st.lists(subtask_like, max_size=8)}),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@example(data=[sub("a-3"), sub("a"), sub("a")], before="", after="", fence=False, cut=0)
@example(data=[sub("x" * 70), sub("x" * 70)], before="Plan:", after="", fence=True, cut=0)
@given(
    data=plan_like,
    before=st.text(max_size=20),
    after=st.text(max_size=20),
    fence=st.booleans(),
    cut=st.integers(0, 3),
)
def test_any_json_in_any_prose_gives_a_valid_plan_or_a_plan_error(data, before, after, fence, cut):
    body = json.dumps(data)
    body = body[: len(body) - cut] if cut else body  # sometimes cut short, as models do
    if fence:
        body = f"```json\n{body}\n```"
    parse_or_plan_error(before + body + after)
