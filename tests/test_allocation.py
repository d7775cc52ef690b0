import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.allocation import Candidate, choose, eligible, score


def agent(
    id: int,
    slug: str = "",
    specialties: tuple[str, ...] = ("coding",),
    completed: int = 0,
    failed: int = 0,
    avg_latency_s: float = 0.0,
    load: int = 0,
    max_concurrency: int = 10,
) -> Candidate:
    return Candidate(
        id=id,
        slug=slug or f"agent-{id}",
        specialties=specialties,
        completed=completed,
        failed=failed,
        avg_latency_s=avg_latency_s,
        load=load,
        max_concurrency=max_concurrency,
    )


def test_the_score_is_100_with_no_history_and_no_load():
    assert score(agent(1)) == 100


def test_the_score_combines_success_rate_latency_and_load():
    c = agent(1, completed=3, failed=1, avg_latency_s=20.0, load=2)
    assert score(c) == pytest.approx(0.75 * 100 - 20.0 * 0.1 - 2 * 5)


def test_a_failure_history_lowers_the_score():
    assert score(agent(1, completed=1, failed=1)) == pytest.approx(50)


def test_it_prefers_specialists():
    generalist = agent(1, "generalist", specialties=("research",), completed=100)
    specialist = agent(2, "specialist", specialties=("coding",), completed=1, failed=1, load=5)
    chosen, reasons = choose("coding", [generalist, specialist])
    assert chosen == specialist
    assert [c["agent"] for c in reasons["candidates"]] == ["specialist"]


def test_a_type_with_no_specialist_falls_back_to_every_agent():
    pool = [agent(1, specialties=("research",)), agent(2, specialties=("coding",))]
    assert eligible("translation", pool) == pool
    chosen, _ = choose("translation", pool)
    assert chosen is not None


def test_it_picks_the_highest_score():
    slow = agent(1, "slow", avg_latency_s=100.0)
    busy = agent(2, "busy", load=3)
    fresh = agent(3, "fresh")
    chosen, reasons = choose("coding", [slow, busy, fresh])
    assert chosen == fresh
    assert reasons["chosen"] == "fresh"
    assert reasons["by"] == "score"


def test_an_agent_at_max_concurrency_is_never_chosen():
    full = agent(1, "full", completed=100, load=2, max_concurrency=2)
    worse = agent(2, "worse", completed=1, failed=9, avg_latency_s=300.0, load=4)
    chosen, _ = choose("coding", [full, worse])
    assert chosen == worse


def test_it_returns_none_when_every_eligible_agent_is_full():
    pool = [agent(1, load=1, max_concurrency=1), agent(2, load=3, max_concurrency=3)]
    chosen, reasons = choose("coding", pool)
    assert chosen is None
    assert reasons["chosen"] is None


def test_a_full_specialist_is_not_replaced_by_a_free_generalist():
    specialist = agent(1, specialties=("coding",), load=1, max_concurrency=1)
    generalist = agent(2, specialties=("research",))
    chosen, _ = choose("coding", [specialist, generalist])
    assert chosen is None


def test_the_hint_wins_when_that_agent_has_capacity():
    best = agent(1, "best")
    hinted = agent(2, "hinted", completed=1, failed=1, load=1)
    chosen, reasons = choose("coding", [best, hinted], hint="hinted")
    assert chosen == hinted
    assert reasons["by"] == "hint"
    assert reasons["hint"] == "hinted"


def test_the_hint_is_ignored_when_that_agent_is_full():
    best = agent(1, "best")
    hinted = agent(2, "hinted", load=2, max_concurrency=2)
    chosen, reasons = choose("coding", [best, hinted], hint="hinted")
    assert chosen == best
    assert reasons["by"] == "score"


def test_an_unknown_hint_falls_back_to_the_score():
    chosen, reasons = choose("coding", [agent(1, "a"), agent(2, "b", load=1)], hint="nobody")
    assert chosen.slug == "a"
    assert reasons["by"] == "score"


def test_ties_go_to_the_lowest_id_whatever_the_order():
    pool = [agent(3), agent(1), agent(2)]
    assert choose("coding", pool)[0].id == 1
    assert choose("coding", list(reversed(pool)))[0].id == 1


def test_the_reasons_record_each_candidates_score_terms():
    c = agent(7, "seven", completed=2, failed=2, avg_latency_s=12.34567, load=1)
    _, reasons = choose("coding", [c])
    assert reasons["type"] == "coding"
    assert reasons["candidates"] == [
        {
            "agent": "seven",
            "success_rate": 0.5,
            "avg_latency_s": 12.346,
            "load": 1,
            "max_concurrency": 10,
            "score": round(50 - 1.234567 - 5, 3),
        }
    ]


TYPES = ("research", "coding", "review")


@st.composite
def candidates(draw) -> list[Candidate]:
    count = draw(st.integers(min_value=1, max_value=8))
    ids = draw(st.lists(st.integers(1, 1000), min_size=count, max_size=count, unique=True))
    pool = []
    for id in ids:
        max_concurrency = draw(st.integers(1, 5))
        pool.append(
            agent(
                id,
                specialties=tuple(draw(st.sets(st.sampled_from(TYPES), max_size=2))),
                completed=draw(st.integers(0, 50)),
                failed=draw(st.integers(0, 50)),
                avg_latency_s=draw(st.floats(0, 500, allow_nan=False)),
                load=draw(st.integers(0, max_concurrency)),
                max_concurrency=max_concurrency,
            )
        )
    return pool


@given(
    pool=candidates(),
    task_type=st.sampled_from((*TYPES, "translation")),
    hint=st.one_of(st.just(""), st.sampled_from([f"agent-{i}" for i in range(1, 20)])),
)
def test_the_choice_is_never_over_capacity(pool, task_type, hint):
    chosen, reasons = choose(task_type, pool, hint)
    if chosen is not None:
        assert chosen.load < chosen.max_concurrency
        assert reasons["chosen"] == chosen.slug
    else:
        assert all(c.load >= c.max_concurrency for c in eligible(task_type, pool))


@given(pool=candidates(), task_type=st.sampled_from((*TYPES, "translation")))
def test_without_a_hint_the_choice_has_the_highest_score_among_free_eligible_agents(
    pool, task_type
):
    chosen, _ = choose(task_type, pool)
    free = [c for c in eligible(task_type, pool) if c.load < c.max_concurrency]
    if not free:
        assert chosen is None
        return
    assert chosen in free
    assert score(chosen) == max(score(c) for c in free)
    assert chosen.id == min(c.id for c in free if score(c) == score(chosen))
