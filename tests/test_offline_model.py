import json

from hypothesis import given
from hypothesis import strategies as st

from agents import judging, offline

PLANNER = {"role": "system", "content": "You are a task-decomposition expert. Answer in JSON."}


def plan_for(job: str) -> dict:
    return json.loads(offline.respond([PLANNER, {"role": "user", "content": job}]))


def test_it_recognises_a_decomposition_request_by_its_system_prompt():
    assert offline.is_decomposition([PLANNER, {"role": "user", "content": "x"}])
    assert not offline.is_decomposition([{"role": "system", "content": "You are a coder."}])
    # The phrase in a user message does not make it a planning request.
    assert not offline.is_decomposition(
        [{"role": "user", "content": "act as a task-decomposition expert"}]
    )


def test_it_plans_research_then_coding_then_review():
    plan = plan_for("Build a URL shortener")

    subtasks = plan["subtasks"]
    assert [s["id"] for s in subtasks] == ["research", "coding", "review"]
    assert [s["type"] for s in subtasks] == ["research", "coding", "review"]
    assert [s["assign_to"] for s in subtasks] == ["researcher", "coder", "reviewer"]
    assert [s["depends_on"] for s in subtasks] == [[], ["research"], ["coding"]]
    for subtask in subtasks:
        assert "Build a URL shortener" in subtask["payload"]["description"]


def test_the_plan_carries_a_trimmed_job_description():
    plan = plan_for("word " * 1000)

    description = plan["subtasks"][0]["payload"]["description"]
    assert len(description) < 400
    assert description.endswith("…")


def test_the_plan_reads_the_last_user_message():
    messages = [
        PLANNER,
        {"role": "user", "content": "first job"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second job"},
    ]
    description = json.loads(offline.respond(messages))["subtasks"][1]["payload"]["description"]
    assert "second job" in description
    assert "first job" not in description


def test_other_requests_get_a_labelled_placeholder():
    text = offline.respond(
        [
            {"role": "system", "content": "You are a researcher."},
            {"role": "user", "content": "Compare Redis and Memcached for sessions"},
        ]
    )
    assert text.startswith("[offline model]")
    assert "no language model was called" in text
    assert "Compare Redis and Memcached for sessions" in text


def test_the_label_names_who_answered():
    text = offline.respond([{"role": "user", "content": "hi"}], label="simulator")
    assert text.startswith("[simulator]")


def test_the_gist_is_short():
    text = offline.respond([{"role": "user", "content": "a" * 5000}])
    assert len(text) < 400


def test_it_reads_content_parts():
    messages = [{"role": "user", "content": [{"type": "text", "text": "part one"}]}]
    assert "part one" in offline.respond(messages)


@given(st.text(), st.booleans())
def test_it_is_deterministic_and_plans_are_valid_json(job: str, planning: bool):
    messages = [PLANNER] if planning else []
    messages.append({"role": "user", "content": job})

    first = offline.respond(messages)
    assert offline.respond(messages) == first
    if planning:
        assert len(json.loads(first)["subtasks"]) == 3


def judge_request(output: str, expected: str = "", rubric: str = "Helpful?") -> list[dict]:
    return judging.judge_messages(
        rubric=rubric, title="T", description="D", output=output, expected=expected
    )


def test_it_recognises_a_judge_request_by_its_system_prompt():
    assert offline.is_judge(judge_request("x"))
    assert not offline.is_judge([PLANNER, {"role": "user", "content": "x"}])
    assert not offline.is_judge([{"role": "user", "content": "You are an evaluation judge"}])


def test_a_judge_request_gets_a_deterministic_score_in_the_judges_format():
    answer = offline.respond(judge_request("The answer is 42"))
    assert answer == offline.respond(judge_request("The answer is 42"))
    value, reason = judging.parse(answer)
    assert offline.JUDGE_LOW <= value <= offline.JUDGE_HIGH
    assert "No language model was called" in reason
    assert "[offline model]" in reason
    # Another output (or rubric) draws another value.
    others = {judging.parse(offline.respond(judge_request(f"out {n}")))[0] for n in range(10)}
    assert len(others) > 3


def test_with_an_expected_output_the_score_follows_their_overlap():
    expected = "Paris is the capital of France"
    full = judging.parse(
        offline.respond(judge_request("Yes: Paris is the capital of France.", expected))
    )
    half = judging.parse(offline.respond(judge_request("Paris is lovely", expected)))
    none = judging.parse(offline.respond(judge_request("No idea at all", expected)))
    assert full[0] == offline.JUDGE_HIGH
    assert none[0] == offline.JUDGE_LOW
    assert none[0] < half[0] < full[0]
    assert "words of the expected output" in full[1]


def test_the_answer_follows_the_instructions_and_the_end_of_the_request():
    request = "Review this. " + "x " * 200 + "The last result said: ship it."
    strict = offline.respond(
        [{"role": "system", "content": "Review strictly."}, {"role": "user", "content": request}]
    )
    lenient = offline.respond(
        [{"role": "system", "content": "Review kindly."}, {"role": "user", "content": request}]
    )
    assert "Instructions followed: Review strictly." in strict
    assert strict != lenient  # another prompt, another answer, as a model's would be
    assert "It ended: …" in strict and "ship it." in strict
    assert len(strict) < 500
