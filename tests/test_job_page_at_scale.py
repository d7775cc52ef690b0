"""A job of 200 subtasks: its page reads the same few queries as a job of two, and stays light
(results and the call trace shortened on the page, whole on each subtask's own page)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import state, team
from agents.allocation import CANDIDATES_KEPT, Candidate, choose
from agents.models import Agent, AuditEntry, Job, JobStatus, LLMCall, SharedState, Subtask
from dashboard import live

pytestmark = pytest.mark.django_db

CALLS = 3  # attempts per subtask: two failures, then the answer


def result_of(n: int) -> str:
    return f"Findings of step {n}.\n\n" + "The cache key was reused. " * 120 + f"END-RESULT-{n}"


def make_job(subtasks: int) -> Job:
    team.seed()
    agents = list(Agent.objects.exclude(slug="orchestrator"))
    job = Job.objects.create(
        title="a large plan", description="d" * 40, status=JobStatus.COMPLETED, result="done"
    )
    SharedState.objects.create(job=job)
    subs = Subtask.objects.bulk_create(
        Subtask(
            job=job,
            key=f"step-{n}",
            type="research",
            payload={"description": f"Look into part {n} of the outage. " * 10},
            agent=agents[n % len(agents)],
            status="completed",
            result=result_of(n),
            attempts=CALLS,
            allocation={
                "type": "research",
                "hint": "",
                "chosen": agents[n % len(agents)].slug,
                "by": "score",
                "candidates": [
                    {
                        "agent": a.slug,
                        "success_rate": 1.0,
                        "avg_latency_s": 1.0,
                        "load": 0,
                        "max_concurrency": 10,
                        "score": 99.9,
                    }  # fmt: skip
                    for a in agents
                ],
            },
        )
        for n in range(subtasks)
    )
    Through = Subtask.depends_on.through
    Through.objects.bulk_create(
        Through(from_subtask=sub, to_subtask=subs[n - k])
        for n, sub in enumerate(subs)
        for k in (1, 2)
        if n - k >= 0
    )
    prompt = "What your teammates found:\n\n" + "Earlier findings. " * 400
    LLMCall.objects.bulk_create(
        LLMCall(
            agent=sub.agent,
            job=job,
            subtask=sub,
            purpose="subtask",
            model="gpt-4.1-mini",
            messages=[
                {"role": "system", "content": "You are a careful researcher."},
                {"role": "user", "content": f"{prompt} END-PROMPT-{sub.key}"},
            ],
            response=sub.result if attempt == CALLS - 1 else "",
            error="" if attempt == CALLS - 1 else "HTTP 503: overloaded " * 50,
            http_status=200 if attempt == CALLS - 1 else 503,
        )
        for sub in subs
        for attempt in range(CALLS)
    )
    for sub in subs[:: max(len(subs) // 10, 1)]:
        AuditEntry.objects.create(action="retry_subtask", job=job, subtask=sub, detail=sub.key)
    for sub in subs:
        state.record_result(job.pk, sub.key, sub.result, author=f"{sub.agent.slug}/{sub.key}")
    return job


def page(client, job: Job) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_200_subtasks_read_as_many_queries_as_30(client, superuser, django_assert_max_num_queries):
    few, _ = page(client, make_job(30))  # past the 20 versions shown: as many queries as 200
    big = make_job(200)
    with django_assert_max_num_queries(few):
        client.get(f"/jobs/{big.pk}/")


def test_the_page_of_200_subtasks_stays_light(client, superuser):
    _, html = page(client, make_job(200))
    assert len(html.encode()) < 200 * 6_000, len(html.encode())  # was 8 MB
    # Whole texts live on each subtask's page, not here.
    assert "END-RESULT-" not in html and "END-PROMPT-" not in html
    assert html.count('href="/subtasks/') >= 200


def test_a_subtask_page_has_the_whole_result_and_a_paginated_trace(client, superuser):
    job = make_job(3)
    sub = job.subtasks.get(key="step-2")
    response = client.get(f"/subtasks/{sub.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "END-RESULT-2" in html and "END-PROMPT-step-2" in html
    assert html.count('class="call') == CALLS


def test_a_long_trace_is_paginated(client, superuser, settings):
    job = make_job(1)
    sub = job.subtasks.get()
    LLMCall.objects.bulk_create(
        LLMCall(
            agent=sub.agent, job=job, subtask=sub, purpose="subtask", model="m", response=f"R{n}"
        )
        for n in range(30)
    )
    first = client.get(f"/subtasks/{sub.pk}/").content.decode()
    assert "R29" in first and "R0<" not in first  # newest first
    last = client.get(f"/subtasks/{sub.pk}/?page=4").content.decode()  # 33 calls, 10 a page
    assert "END-PROMPT-step-0" in last and "R29" not in last
    assert "page 4 of 4" in last and 'rel="prev"' in last


def test_live_renders_of_a_large_plan_read_few_queries(django_assert_max_num_queries):
    small, big = make_job(30), make_job(200)

    def render(job: Job) -> int:
        ids = set(job.subtasks.values_list("pk", flat=True))
        with CaptureQueriesContext(connection) as queries:
            live.render_job(job.pk, moved=True, changed=ids, state=True)
        return len(queries)

    assert render(big) <= render(small)


def review_queries(client, subtasks: int) -> int:
    job = Job.objects.create(
        title="in review", description="d" * 20, status=JobStatus.WAITING, review_plan=True
    )
    Job.objects.filter(pk=job.pk).update(planned_at=job.created_at)
    SharedState.objects.create(job=job)
    Subtask.objects.bulk_create(
        Subtask(job=job, key=f"s{n}", type="research", payload={"description": "look"})
        for n in range(subtasks)
    )
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/jobs/{job.pk}/")
    assert "Approve the plan" in response.content.decode()
    return len(queries)


def test_a_plan_in_review_reads_as_many_queries_for_many_subtasks(client, superuser, settings):
    settings.PLAN_MAX_SUBTASKS = 200
    team.seed()
    assert review_queries(client, 200) == review_queries(client, 2)


def test_a_large_team_keeps_each_allocation_record_small():
    crowd = [
        Candidate(
            id=n,
            slug=f"a{n}",
            specialties=("research",),
            completed=n,
            failed=1,
            avg_latency_s=0.0,
            load=0,
            max_concurrency=2,
        )  # fmt: skip
        for n in range(1, 501)
    ]
    chosen, reasons = choose("research", crowd, hint="a1")  # the worst score, but asked for
    assert chosen.slug == "a1" and reasons["eligible"] == 500
    kept = [c["agent"] for c in reasons["candidates"]]
    assert kept == [f"a{n}" for n in range(500, 500 - CANDIDATES_KEPT, -1)] + ["a1"]
