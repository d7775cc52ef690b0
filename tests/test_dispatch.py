import pytest

from agents import enqueue
from agents.dispatch import dispatch_ready
from agents.models import Agent, Job, JobStatus, Subtask, SubtaskStatus

pytestmark = pytest.mark.django_db


def make_agent(slug: str, specialties=("coding",), max_concurrency: int = 10, **fields) -> Agent:
    return Agent.objects.create(
        name=slug.title(),
        slug=slug,
        specialties=list(specialties),
        max_concurrency=max_concurrency,
        **fields,
    )


def make_job(priority: int = 5, title: str = "Job") -> Job:
    return Job.objects.create(
        title=title, description="Do it.", priority=priority, status=JobStatus.WORKING
    )


def make_subtask(
    job: Job,
    key: str,
    type: str = "coding",
    depends_on=(),
    status: str = SubtaskStatus.WAITING,
    **fields,
) -> Subtask:
    sub = Subtask.objects.create(
        job=job,
        key=key,
        type=type,
        payload={"description": f"do {key}"},
        priority=job.priority,
        status=status,
        **fields,
    )
    sub.depends_on.set(depends_on)
    return sub


def status_of(sub: Subtask) -> str:
    sub.refresh_from_db()
    return sub.status


def test_higher_priority_jobs_are_dispatched_first():
    make_agent("coder", max_concurrency=1)
    low = make_subtask(make_job(priority=5), "low")
    high = make_subtask(make_job(priority=0), "high")

    assert dispatch_ready() == 1

    assert status_of(high) == SubtaskStatus.QUEUED
    assert status_of(low) == SubtaskStatus.WAITING


def test_within_a_priority_the_oldest_job_goes_first():
    coder = make_agent("coder", max_concurrency=1)
    first_job, second_job = make_job(), make_job()
    later = make_subtask(second_job, "later")
    first = make_subtask(first_job, "first")
    also_first = make_subtask(first_job, "also-first")

    dispatch_ready()
    assert [status_of(s) for s in (first, also_first, later)] == ["queued", "waiting", "waiting"]

    first.transition(SubtaskStatus.QUEUED, SubtaskStatus.COMPLETED)
    dispatch_ready()
    assert [status_of(s) for s in (also_first, later)] == ["queued", "waiting"]
    assert also_first.agent == coder


def test_a_subtask_waits_for_its_dependencies():
    make_agent("coder")
    job = make_job()
    upstream = make_subtask(job, "upstream", status=SubtaskStatus.WORKING)
    downstream = make_subtask(job, "downstream", depends_on=[upstream])

    assert dispatch_ready() == 0
    assert status_of(downstream) == SubtaskStatus.WAITING

    upstream.transition(SubtaskStatus.WORKING, SubtaskStatus.COMPLETED)
    assert dispatch_ready() == 1
    assert status_of(downstream) == SubtaskStatus.QUEUED


def test_a_subtask_waits_while_any_dependency_is_open():
    make_agent("coder")
    job = make_job()
    done = make_subtask(job, "done", status=SubtaskStatus.COMPLETED)
    queued = make_subtask(job, "queued", status=SubtaskStatus.QUEUED)
    downstream = make_subtask(job, "downstream", depends_on=[done, queued])

    assert dispatch_ready() == 0
    assert status_of(downstream) == SubtaskStatus.WAITING


def test_a_failed_dependency_fails_the_subtask():
    make_agent("coder")
    job = make_job()
    upstream = make_subtask(job, "upstream", status=SubtaskStatus.FAILED)
    downstream = make_subtask(job, "downstream", depends_on=[upstream])

    assert dispatch_ready() == 0

    downstream.refresh_from_db()
    assert downstream.status == SubtaskStatus.FAILED
    assert downstream.error == "dependency failed"
    assert downstream.agent is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_an_agent_is_never_assigned_more_than_its_max_concurrency():
    coder = make_agent("coder", max_concurrency=3)
    busy = make_job()
    make_subtask(busy, "running", status=SubtaskStatus.WORKING, agent=coder)
    make_subtask(busy, "queued", status=SubtaskStatus.QUEUED, agent=coder)
    make_subtask(busy, "finished", status=SubtaskStatus.COMPLETED, agent=coder)
    job = make_job()
    waiting = [make_subtask(job, f"s{i}") for i in range(5)]

    assert dispatch_ready() == 1

    assert [status_of(s) for s in waiting].count(SubtaskStatus.QUEUED) == 1
    assert coder.current_load() == 3
    assert dispatch_ready() == 0
    assert coder.current_load() == 3


def test_work_spreads_over_agents_with_capacity():
    make_agent("one", max_concurrency=2)
    make_agent("two", max_concurrency=2)
    job = make_job()
    subs = [make_subtask(job, f"s{i}") for i in range(5)]

    assert dispatch_ready() == 4

    assert [status_of(s) for s in subs].count(SubtaskStatus.QUEUED) == 4
    loads = [a.current_load() for a in Agent.objects.order_by("slug")]
    assert loads == [2, 2]


def test_disabled_agents_receive_nothing():
    make_agent("off", specialties=("coding",), enabled=False)
    fallback = make_agent("fallback", specialties=("research",))
    sub = make_subtask(make_job(), "s", type="coding")

    assert dispatch_ready() == 1

    sub.refresh_from_db()
    assert sub.agent == fallback
    assert [c["agent"] for c in sub.allocation["candidates"]] == ["fallback"]


def test_nothing_is_dispatched_when_every_agent_is_disabled():
    make_agent("off", enabled=False)
    sub = make_subtask(make_job(), "s")

    assert dispatch_ready() == 0
    assert status_of(sub) == SubtaskStatus.WAITING


def test_subtasks_of_jobs_that_are_not_working_are_left_alone():
    make_agent("coder")
    job = Job.objects.create(title="Job", description="Do it.", status=JobStatus.CANCELLED)
    sub = make_subtask(job, "s")

    assert dispatch_ready() == 0
    assert status_of(sub) == SubtaskStatus.WAITING


def test_the_allocation_reasons_are_recorded_on_the_subtask():
    make_agent("coder", completed_count=3, failed_count=1, avg_latency_s=20.0)
    make_agent("fresh")
    make_agent("writer", specialties=("research",))
    sub = make_subtask(make_job(), "s")

    dispatch_ready()

    sub.refresh_from_db()
    assert sub.agent.slug == "fresh"
    assert sub.allocation["chosen"] == "fresh"
    assert sub.allocation["by"] == "score"
    assert sub.allocation["type"] == "coding"
    terms = {c["agent"]: c for c in sub.allocation["candidates"]}
    assert set(terms) == {"coder", "fresh"}
    assert terms["coder"]["success_rate"] == 0.75
    assert terms["coder"]["avg_latency_s"] == 20.0
    assert terms["coder"]["load"] == 0
    assert terms["coder"]["score"] == pytest.approx(75 - 2)
    assert terms["fresh"]["score"] == 100


def test_the_plans_hint_is_honoured():
    make_agent("best")
    make_agent("hinted", completed_count=1, failed_count=1)
    sub = make_subtask(make_job(), "s", assign_hint="hinted")

    dispatch_ready()

    sub.refresh_from_db()
    assert sub.agent.slug == "hinted"
    assert sub.allocation["by"] == "hint"


def test_each_dispatched_subtask_is_sent_to_a_worker_after_commit(
    django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(enqueue, "send_now", lambda name, pk, **options: sent.append(pk))
    make_agent("coder", max_concurrency=2)
    job = make_job()
    subs = [make_subtask(job, f"s{i}") for i in range(3)]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        dispatch_ready()
    assert sent == []  # nothing reaches the broker before the dispatch commits

    for callback in callbacks:
        callback()
    assert sorted(sent) == [subs[0].pk, subs[1].pk]
