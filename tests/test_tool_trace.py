"""Tool calls in the trace: under the model call that asked for them, on the job page and the
subtask's page, with their name, arguments, status, latency and result or error, escaped and
shortened on the job page, in the same number of queries however many there are."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, Job, JobStatus, LLMCall, SharedState, Subtask, ToolCall

from .api_support import token_client

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert('tool')</script>"


def job_with_tool_calls(subtasks: int = 1, calls: int = 1) -> Job:
    agent, _ = Agent.objects.get_or_create(
        slug="researcher",
        defaults={"name": "Researcher", "specialties": ["research"], "tools": ["read_state"]},
    )
    job = Job.objects.create(title="T", description="d" * 20, status=JobStatus.WORKING)
    SharedState.objects.create(job=job)
    for n in range(subtasks):
        sub = Subtask.objects.create(
            job=job, key=f"s{n}", type="research", agent=agent, status="working"
        )
        for m in range(calls):
            asked = LLMCall.objects.create(
                agent=agent,
                job=job,
                subtask=sub,
                purpose="subtask",
                model="m",
                finish_reason="tool_calls",
                http_status=200,
                tool_calls=[{"id": f"c{m}", "type": "function", "function": {"name": "x"}}],
            )
            ToolCall.objects.create(
                job=job,
                subtask=sub,
                llm_call=asked,
                agent=agent,
                call_id=f"c{m}",
                name="read_state",
                arguments='{"key": "' + HOSTILE + '"}',
                status=ToolCall.Status.DONE,
                result=HOSTILE + " and then " + "more text " * 100 + "END-OF-RESULT",
                latency_s=0.25,
                finished_at=timezone.now(),
            )
            ToolCall.objects.create(
                job=job,
                subtask=sub,
                llm_call=asked,
                agent=agent,
                call_id=f"d{m}",
                name="http_get",
                arguments='{"url": "https://nowhere.example/"}',
                status=ToolCall.Status.DONE,
                error="nowhere.example is not among the hosts this tool may fetch from.",
                latency_s=0.5,
                finished_at=timezone.now(),
            )
    return job


def test_the_job_page_shows_each_tool_call_under_its_model_call_escaped_and_short(client, viewer):
    job = job_with_tool_calls()
    html = client.get(f"/jobs/{job.pk}/").content.decode()

    call = LLMCall.objects.get()
    done, failed = ToolCall.objects.order_by("pk")
    trace = html[html.index(f'id="call-{call.pk}"') :]
    assert f'id="tool-call-{done.pk}"' in trace and f'id="tool-call-{failed.pk}"' in trace
    assert "<code>read_state</code>" in html and "<code>http_get</code>" in html
    assert "0.25 s" in html and "done" in html
    assert "nowhere.example is not among the hosts" in html
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#x27;tool&#x27;)&lt;/script&gt;" in html
    assert "END-OF-RESULT" not in html  # the whole result is on the subtask's page


def test_the_subtask_page_shows_the_whole_result(client, viewer):
    job = job_with_tool_calls()
    sub = job.subtasks.get()
    html = client.get(f"/subtasks/{sub.pk}/").content.decode()

    assert "END-OF-RESULT" in html and "<code>read_state</code>" in html
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert "not among the hosts" in html


def test_tool_calls_add_no_query_per_call(client, viewer):
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    small, big = job_with_tool_calls(1, 1), job_with_tool_calls(6, 3)
    assert queries(f"/jobs/{big.pk}/") <= queries(f"/jobs/{small.pk}/")
    small_sub, big_sub = small.subtasks.get(), big.subtasks.first()
    assert queries(f"/subtasks/{big_sub.pk}/") <= queries(f"/subtasks/{small_sub.pk}/")


def test_the_apis_call_trace_has_the_tool_calls_in_a_constant_number_of_queries(viewer):
    reader = token_client(viewer)

    def trace(job: Job) -> tuple[int, list]:
        with CaptureQueriesContext(connection) as captured:
            response = reader.get(f"/api/v1/jobs/{job.pk}/calls")
        assert response.status_code == 200
        return len(captured), response.json()["results"]

    small = job_with_tool_calls(1, 1)
    trace(small)  # the token's first use is recorded once
    few, _ = trace(small)
    many, calls = trace(job_with_tool_calls(2, 3))
    assert many == few and len(calls) == 6
    first = calls[0]
    assert first["tool_calls"][0]["id"] == "c0"
    done, failed = first["tool_runs"]
    assert (done["name"], done["status"], done["latency_s"]) == ("read_state", "done", 0.25)
    assert done["result"].startswith(HOSTILE)  # JSON, not HTML: escaping is the reader's
    assert failed["error"].startswith("nowhere.example is not among the hosts")
