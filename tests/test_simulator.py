import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agents import judging, offline
from tests.simulator_fixture import running_simulator

AUTH = {"Authorization": "Bearer sk-anything"}
PLANNING = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "system", "content": "You are a task-decomposition expert."},
        {"role": "user", "content": "Build a chess engine"},
    ],
}
CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hello there"}]}


def post(base_url: str, body: object, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        f"{base_url}/chat/completions", json=body, headers=AUTH if headers is None else headers
    )


def content(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


def test_it_answers_in_openai_shape():
    with running_simulator() as sim:
        response = post(sim.base_url, CHAT)

    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-4.1"
    [choice] = data["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"].startswith("[simulator]")
    usage = data["usage"]
    assert usage["prompt_tokens"] == 3  # "Hello there" is 11 characters
    assert usage["completion_tokens"] == (len(choice["message"]["content"]) + 3) // 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_it_serves_both_paths():
    with running_simulator() as sim:
        root = sim.base_url.removesuffix("/v1")
        assert post(root, CHAT).status_code == 200
        assert post(sim.base_url, CHAT).status_code == 200
        assert httpx.post(f"{root}/other", json=CHAT, headers=AUTH).status_code == 404


def test_it_plans_with_plain_json():
    with running_simulator() as sim:
        plan = json.loads(content(post(sim.base_url, PLANNING)))
    assert [s["assign_to"] for s in plan["subtasks"]] == ["researcher", "coder", "reviewer"]


def test_it_requires_a_bearer_token():
    with running_simulator() as sim:
        assert post(sim.base_url, CHAT, headers={"Authorization": "Basic abc"}).status_code == 401
        assert post(sim.base_url, CHAT, headers={}).status_code == 401
        assert sim.stats.snapshot()["errors"] == 2


def test_it_rejects_a_body_without_model_or_messages():
    with running_simulator() as sim:
        assert post(sim.base_url, {"messages": []}).status_code == 400
        assert post(sim.base_url, {"model": "m"}).status_code == 400
        response = httpx.post(f"{sim.base_url}/chat/completions", content=b"{", headers=AUTH)
        assert response.status_code == 400


def test_it_wraps_plans_in_fences_or_prose():
    with running_simulator(wrap="fence") as sim:
        fenced = content(post(sim.base_url, PLANNING))
        assert fenced.startswith("```json\n{") and fenced.endswith("}\n```")
        # Only plans are wrapped.
        assert content(post(sim.base_url, CHAT)).startswith("[simulator]")
    with running_simulator(wrap="prose") as sim:
        prose = content(post(sim.base_url, PLANNING))
        assert prose.startswith("Sure!") and '{"subtasks"' in prose


def test_it_breaks_plan_json_on_demand():
    with running_simulator(invalid_json_rate=1) as sim:
        broken = content(post(sim.base_url, PLANNING))
    assert broken.startswith('{"subtasks"')
    try:
        json.loads(broken)
    except ValueError:
        pass
    else:
        raise AssertionError("the plan should not parse")


def test_it_truncates_on_demand():
    with running_simulator(truncate_rate=1) as sim:
        data = post(sim.base_url, PLANNING).json()
    assert data["choices"][0]["finish_reason"] == "length"
    text = data["choices"][0]["message"]["content"]
    assert text == offline.respond(PLANNING["messages"], label="simulator")[: len(text)]
    assert len(text) < len(offline.respond(PLANNING["messages"], label="simulator"))


def test_faults_are_counted():
    with running_simulator(error_rate=1) as sim:
        assert post(sim.base_url, CHAT).status_code == 500
        assert sim.stats.snapshot()["errors"] == 1
    with running_simulator(rate_limit_rate=1, retry_after=3) as sim:
        response = post(sim.base_url, CHAT)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert sim.stats.snapshot()["rate_limited"] == 1


def test_a_hang_is_released_when_the_server_stops():
    with running_simulator(hang_rate=1) as sim:
        try:
            httpx.post(f"{sim.base_url}/chat/completions", json=CHAT, headers=AUTH, timeout=0.2)
        except httpx.TimeoutException:
            pass
        else:
            raise AssertionError("a hung request should not be answered")
        assert sim.stats.snapshot()["hangs"] == 1
    # Leaving the block shut the server down, which releases the hung handler.
    deadline = time.monotonic() + 5
    while sim.stats.snapshot()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.stats.snapshot()["in_flight"] == 0


def test_a_seed_makes_faults_repeatable():
    def statuses(seed: int) -> list[int]:
        with running_simulator(seed=seed, error_rate=0.5) as sim:
            return [post(sim.base_url, CHAT).status_code for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 500}


def test_stats_count_concurrent_requests_and_reset():
    with running_simulator(latency_ms=300) as sim:
        with httpx.Client(limits=httpx.Limits(max_connections=50)) as client:
            threads = [
                threading.Thread(
                    target=client.post,
                    args=(f"{sim.base_url}/chat/completions",),
                    kwargs={"json": CHAT, "headers": AUTH},
                )
                for _ in range(25)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stats = client.get(f"{sim.base_url.removesuffix('/v1')}/stats").json()
            reset = client.post(f"{sim.base_url.removesuffix('/v1')}/stats/reset").json()

    assert stats == {
        "requests": 25,
        "in_flight": 0,
        "peak_in_flight": 25,
        "errors": 0,
        "rate_limited": 0,
        "hangs": 0,
        "tool_calls": 0,
        "streamed": 0,
        "cut_streams": 0,
        "answered_twice": 1,  # one request, answered 25 times: paid for 25 times
    }
    assert reset["requests"] == 0
    assert reset["peak_in_flight"] == 0
    assert reset["answered_twice"] == 0


def test_a_peak_only_reset_keeps_the_counts():
    with running_simulator() as sim:
        post(sim.base_url, CHAT)
        other = {**CHAT, "messages": [{"role": "user", "content": "something else"}]}
        post(sim.base_url, other)
        post(sim.base_url, other)
        reset = httpx.post(f"{sim.base_url}/stats/reset?only=peak").json()
    assert reset["requests"] == 3
    assert reset["answered_twice"] == 1
    assert reset["peak_in_flight"] == 0


def test_the_command_announces_its_port():
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    process = subprocess.Popen(
        [sys.executable, str(manage), "llm_simulator", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("llm_simulator listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[1]
        assert httpx.post(f"{base}/v1/chat/completions", json=CHAT, headers=AUTH).is_success
        assert httpx.get(f"{base}/stats").json()["requests"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_hang_its_client_gave_up_on_is_no_longer_in_flight():
    with running_simulator(hang_rate=1) as sim:
        try:
            httpx.post(f"{sim.base_url}/chat/completions", json=CHAT, headers=AUTH, timeout=0.3)
        except httpx.TimeoutException:
            pass
        deadline = time.monotonic() + 5
        while sim.stats.snapshot()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = sim.stats.snapshot()
    assert stats["hangs"] == 1
    assert stats["in_flight"] == 0


def test_an_unknown_model_is_a_404():
    with running_simulator() as sim:
        response = post(sim.base_url, {**CHAT, "model": "unknown-model"})
    assert response.status_code == 404
    assert "does not exist" in response.json()["error"]["message"]


READ_STATE = {
    "type": "function",
    "function": {
        "name": "read_state",
        "description": "Read a key of the job's shared state.",
        "parameters": {
            "type": "object",
            "properties": {"key": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["key", "limit"],
        },
    },
}


def test_offered_tools_it_calls_one_then_answers_in_text():
    with running_simulator() as sim:
        first = post(sim.base_url, {**CHAT, "tools": [READ_STATE]}).json()
        [call] = first["choices"][0]["message"]["tool_calls"]
        follow_up = {
            **CHAT,
            "tools": [READ_STATE],
            "messages": [
                *CHAT["messages"],
                first["choices"][0]["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "42"},
            ],
        }
        second = post(sim.base_url, follow_up).json()
        stats = sim.stats.snapshot()
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "read_state"
    assert json.loads(call["function"]["arguments"]) == {"key": "simulated", "limit": 1}
    assert second["choices"][0]["finish_reason"] == "stop"
    assert second["choices"][0]["message"]["content"]
    assert stats["tool_calls"] == 1


def test_malformed_tools_are_a_400():
    with running_simulator() as sim:
        response = post(sim.base_url, {**CHAT, "tools": [{"type": "function"}]})
    assert response.status_code == 400


def stream_events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_it_streams_the_same_answer_in_openai_chunks():
    with running_simulator() as sim:
        plain = post(sim.base_url, CHAT)
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream(
            "POST", f"{sim.base_url}/chat/completions", json=body, headers=AUTH
        ) as response:
            assert response.headers["content-type"] == "text/event-stream"
            data = stream_events(response)
        stats = sim.stats.snapshot()

    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == content(plain)
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain.json()["usage"]
    assert stats["streamed"] == 1
    assert stats["answered_twice"] == 1  # streamed or not, each answer is counted


def test_a_stream_has_usage_only_when_asked():
    with running_simulator() as sim:
        with httpx.stream(
            "POST",
            f"{sim.base_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers=AUTH,
        ) as response:
            data = stream_events(response)
    chunks = [json.loads(item) for item in data[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_streamed_tool_call_comes_in_pieces():
    with running_simulator() as sim:
        body = {**CHAT, "tools": [READ_STATE], "stream": True}
        with httpx.stream(
            "POST", f"{sim.base_url}/chat/completions", json=body, headers=AUTH
        ) as response:
            chunks = [json.loads(item) for item in stream_events(response)[:-1]]
    parts = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert parts[0]["function"]["name"] == "read_state"
    assert parts[0]["id"].startswith("call_")
    assert {part["index"] for part in parts} == {0}
    arguments = "".join(part["function"].get("arguments") or "" for part in parts)
    assert len(parts) > 2
    assert json.loads(arguments) == {"key": "simulated", "limit": 1}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stream_is_spread_over_the_latency():
    with running_simulator(latency_ms=1000) as sim:
        with httpx.stream(
            "POST",
            f"{sim.base_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers=AUTH,
        ) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if '"content": "[simulator]' in line)
            # The first words are here while the simulator is still answering.
            in_flight = sim.stats.snapshot()["in_flight"]
            rest = list(lines)
    assert first
    assert in_flight == 1
    assert rest[-2] == "data: [DONE]"


def test_it_refuses_to_stream_on_demand():
    with running_simulator(refuse_stream=True) as sim:
        refused = post(sim.base_url, {**CHAT, "stream": True})
        plain = post(sim.base_url, CHAT)
    assert refused.status_code == 400
    assert "stream" in refused.json()["error"]["message"]
    assert plain.status_code == 200


def test_it_cuts_a_stream_on_demand():
    with running_simulator(cut_stream_rate=1) as sim:
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream(
                "POST",
                f"{sim.base_url}/chat/completions",
                json={**CHAT, "stream": True},
                headers=AUTH,
            ) as response:
                data = []
                for line in response.iter_lines():
                    data.append(line)
        stats = sim.stats.snapshot()
    assert any('"content"' in line for line in data)
    assert not any("[DONE]" in line for line in data)
    assert stats["cut_streams"] == 1
    assert stats["answered_twice"] == 0


JUDGING = {
    "model": "judge-model",
    "messages": judging.judge_messages(
        rubric="Is it right?", title="Add", description="2 + 2", output="4", expected="4"
    ),
}


def test_it_answers_a_judge_in_the_judges_format():
    with running_simulator() as sim:
        answer = content(post(sim.base_url, JUDGING))
    verdict = json.loads(answer)
    assert verdict["score"] == offline.JUDGE_HIGH
    assert "[simulator]" in verdict["reason"]


@pytest.mark.parametrize(
    ("style", "looks"),
    [
        ("prose", lambda text: text.startswith("Here is my evaluation")),
        ("fence", lambda text: text.startswith("```json\n{")),
        ("out-of-ten", lambda text: '"score": "9.5/10"' in text),
    ],
)
def test_it_writes_judge_answers_messily_on_demand(style, looks):
    with running_simulator(judge_style=style) as sim:
        answer = content(post(sim.base_url, JUDGING))
        # Only judge answers are written so.
        assert content(post(sim.base_url, CHAT)).startswith("[simulator]")
    assert looks(answer)
    with pytest.raises(ValueError):
        json.loads(answer)
    assert judging.parse(answer)[0] == pytest.approx(offline.JUDGE_HIGH)


def test_a_mixed_judge_writes_each_style_and_every_answer_parses():
    with running_simulator(judge_style="mixed", seed=7) as sim:
        answers = [content(post(sim.base_url, JUDGING)) for _ in range(24)]
    kinds = {a[:4] for a in answers}
    assert len(kinds) >= 3
    assert {judging.parse(a)[0] for a in answers} == {offline.JUDGE_HIGH}
