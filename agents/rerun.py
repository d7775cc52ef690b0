"""Re-run a job from one of its subtasks: a new job with the same plan, whose subtasks
upstream of the chosen one are copied with their results (no provider call), and whose
chosen subtask (its input, its agent or the agent's version changed, if the operator wishes)
and everything downstream of it run again."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from . import dispatch, events, state, versions
from .allocation import Candidate, eligible
from .audit import audit
from .models import (
    SUBTASK_DESCRIPTION_CHARS,
    Agent,
    AgentVersion,
    Job,
    JobStatus,
    SharedState,
    SharedStateVersion,
    Subtask,
    SubtaskStatus,
)
from .tools import RESERVED_KEYS

COPY_AUTHOR = "rerun/copy"
TITLE_CHARS = Job._meta.get_field("title").max_length


class RerunRefused(Exception):
    """Why this subtask cannot be re-run now, in words for the operator."""


def refusal(sub: Subtask) -> str:
    """Why `sub` may not be re-run, or "" when it may (reads `sub.job` and its
    dependencies' statuses).

    Only an ended job: what is copied must not change any more, and the original's own run
    of the chosen step would otherwise be paid for alongside the re-run's. A completed
    subtask ran only once its dependencies had completed, so its direct dependencies
    completing means every ancestor did.
    """
    job = sub.job
    if job.planned_at is None:
        return f"Job #{job.pk} has no plan yet: there is no step to re-run from."
    if not job.is_terminal:
        return (
            f"Job #{job.pk} is {job.get_status_display().lower()}: re-run it from a step once "
            "it has ended (completed, failed or cancelled), or cancel it first."
        )
    waiting_on = [d.key for d in sub.depends_on.all() if d.status != SubtaskStatus.COMPLETED]
    if waiting_on:
        return (
            f"{sub.key} depends on {', '.join(waiting_on)}, which did not complete: there is "
            "no result to copy. Re-run from the first step that did not complete."
        )
    return ""


def eligible_agents(task_type: str) -> list[Agent]:
    """Enabled agents that dispatch would let run a subtask of this type (allocation's rule:
    its specialists, else anyone but the orchestrator), by name."""
    agents = list(Agent.objects.filter(enabled=True).order_by("name"))
    candidates = [
        Candidate(
            id=a.pk,
            slug=a.slug,
            specialties=tuple(a.specialties),
            completed=0,
            failed=0,
            avg_latency_s=0.0,
            load=0,
            max_concurrency=a.max_concurrency,
        )
        for a in agents
    ]
    allowed = {c.id for c in eligible(task_type, candidates)}
    return [a for a in agents if a.pk in allowed]


def _downstream(chosen: Subtask, subtasks: list[Subtask]) -> set[int]:
    """The chosen subtask and every subtask that depends on it, transitively."""
    dependents: dict[int, list[int]] = {}
    for sub in subtasks:
        for dep in sub.depends_on.all():
            dependents.setdefault(dep.pk, []).append(sub.pk)
    found, frontier = {chosen.pk}, [chosen.pk]
    while frontier:
        for pk in dependents.get(frontier.pop(), []):
            if pk not in found:
                found.add(pk)
                frontier.append(pk)
    return found


def _copied(chosen: Subtask, subtasks: list[Subtask]) -> set[int]:
    """The subtasks a re-run from `chosen` copies: completed, and neither it nor after it.
    The rest runs (downstream, or a step beside it that did not complete)."""
    again = _downstream(chosen, subtasks)
    return {s.pk for s in subtasks if s.pk not in again and s.status == SubtaskStatus.COMPLETED}


def preview(sub: Subtask) -> tuple[list[str], list[str]]:
    """The keys a re-run from `sub` would copy and those it would run, in plan order."""
    subtasks = list(sub.job.subtasks.prefetch_related("depends_on").order_by("pk"))
    copied = _copied(sub, subtasks)
    return (
        [s.key for s in subtasks if s.pk in copied],
        [s.key for s in subtasks if s.pk not in copied],
    )


def _copied_state(job_id: int, copied_keys: set[str]) -> dict:
    """What the copied subtasks wrote to the original's shared state besides their results
    (their tools' writes, authored "<agent>/<key>"), in the order they wrote it."""
    data: dict = {}
    rows = SharedStateVersion.objects.filter(state__job_id=job_id).order_by("version")
    for author, changes in rows.values_list("author", "changes"):
        if author.partition("/")[2] in copied_keys:
            kept = {k: v for k, v in changes.items() if k not in RESERVED_KEYS}
            data = state.merge(data, kept)
    return data


def rerun_from(
    subtask: Subtask,
    user,
    *,
    description: str | None = None,
    agent: Agent | None = None,
    version: int | None = None,
    submit_token: uuid.UUID | None = None,
) -> Job:
    """A new job linked to `subtask`'s: the plan copied, the steps upstream of `subtask`
    completed with their results and no call, `subtask` (with a new description or agent,
    if given) and its dependents waiting to run; set working and dispatched. A `version`
    runs the step's agent (`agent`, or the one that ran it) as it was at that version, in
    this step and any later one it runs (the new job's `agent_versions`). The same
    `submit_token` twice (a form posted twice) gives one job.

    Raises RerunRefused, saying why, when the job has not ended or has no plan, when an
    upstream step did not complete, or when the description or agent cannot be used.
    """
    with transaction.atomic():
        # One re-run of a job at a time: a second post of the same form then finds the first.
        original = Job.objects.select_for_update().get(pk=subtask.job_id)
        if submit_token and (done := Job.objects.filter(submit_token=submit_token).first()):
            return done
        subtasks = list(original.subtasks.prefetch_related("depends_on").order_by("pk"))
        chosen = next((s for s in subtasks if s.pk == subtask.pk), None)
        if chosen is None:
            raise RerunRefused(f"Job #{original.pk} has no subtask {subtask.key} any more.")
        chosen.job = original
        if reason := refusal(chosen):
            raise RerunRefused(reason)
        changes = []
        if description is not None:
            description = description.strip()
            if not description:
                raise RerunRefused("Give the step a description.")
            if len(description) > SUBTASK_DESCRIPTION_CHARS:
                raise RerunRefused(
                    f"Keep the description to {SUBTASK_DESCRIPTION_CHARS} characters "
                    f"(it has {len(description)})."
                )
            if description != chosen.description:
                changes.append(f"description: {description}")
        pins = dict(original.agent_versions or {})
        if version is not None:
            runner = agent or chosen.agent
            if runner is None:
                raise RerunRefused("Choose the agent whose version runs the step.")
            if not AgentVersion.objects.filter(agent=runner, number=version).exists():
                raise RerunRefused(
                    f"{runner.slug} has no version {version}: its versions run from 1 to "
                    f"{runner.version}."
                )
            pins[runner.slug] = version
            changes.append(f"version: {versions.label(runner.slug, version)}")
            agent = runner  # the version belongs to this agent: the step goes to it
        if agent is not None:
            if agent.pk not in {a.pk for a in eligible_agents(chosen.type)}:
                raise RerunRefused(
                    f"{agent.slug} may not run a {chosen.type} step: choose an enabled agent "
                    f"with the {chosen.type} specialty (or, if none has it, any specialist)."
                )
            # Dispatch follows the hint only to an agent with room: a full one would see
            # the step go to another, and the comparison lose its point.
            if (load := agent.current_load()) >= agent.max_concurrency:
                raise RerunRefused(
                    f"{agent.slug} is running {load} subtasks, its max concurrency: choose it "
                    "again once it has room, or choose another agent."
                )
            changes.append(f"agent: {agent.slug}")
        job = _create_rerun(
            original, subtasks, chosen, description, agent, user, submit_token, pins
        )
        detail = f"Re-run of #{original.pk} from {chosen.key}"
        audit(
            "job.rerun",
            actor=user,
            job=job,
            subtask=job.subtasks.get(key=chosen.key),
            detail="; ".join([detail, *changes]),
        )
    dispatch.dispatch_ready()
    return job


def _create_rerun(
    original: Job,
    subtasks: list[Subtask],
    chosen: Subtask,
    description: str | None,
    agent: Agent | None,
    user,
    submit_token: uuid.UUID | None,
    pins: dict[str, int],
) -> Job:
    mark = f" (re-run from {chosen.key})"
    job = Job.objects.create(
        title=original.title[: TITLE_CHARS - len(mark)] + mark,
        description=original.description,
        priority=original.priority,
        budget_tokens=original.budget_tokens,
        budget_cost=original.budget_cost,
        submitted_by=user,
        rerun_of=original,
        rerun_from=chosen.key,
        submit_token=submit_token,
        agent_versions=pins,
    )
    SharedState.objects.create(job=job)
    copied = _copied(chosen, subtasks)
    now = timezone.now()
    copies = []
    for sub in subtasks:
        copy = Subtask(
            job=job,
            key=sub.key,
            type=sub.type,
            payload=sub.payload,
            assign_hint=sub.assign_hint,
            priority=job.priority,
            max_retries=sub.max_retries,
        )
        if sub.pk == chosen.pk:
            if description is not None:
                copy.payload = {**sub.payload, "description": description}
            if agent is not None:
                # Dispatch follows the hint to an agent that may run the step and has room
                # (checked above), on this run and on every retry of it.
                copy.assign_hint = agent.slug
        elif sub.pk in copied:
            copy.status = SubtaskStatus.COMPLETED
            copy.result = sub.result
            copy.agent_id = sub.agent_id
            copy.agent_version = sub.agent_version  # the version its result came from
            copy.copied_from = sub
            copy.finished_at = now
        copies.append(copy)
    by_key = {s.key: s for s in Subtask.objects.bulk_create(copies)}
    Edge = Subtask.depends_on.through
    Edge.objects.bulk_create(
        Edge(from_subtask_id=by_key[sub.key].pk, to_subtask_id=by_key[dep.key].pk)
        for sub in subtasks
        for dep in sub.depends_on.all()
    )
    pending = [
        {
            "id": s.key,
            "type": s.type,
            "description": s.description,
            "depends_on": [d.key for d in sub.depends_on.all()],
        }
        for sub in subtasks
        if not (s := by_key[sub.key]).copied_from_id
    ]
    results = {s.key: s.result for s in by_key.values() if s.copied_from_id}
    written = _copied_state(original.pk, set(results))
    state.write(
        job.pk, {**written, "pending_tasks": pending, "results": results}, author=COPY_AUTHOR
    )
    job.transition(JobStatus.QUEUED, JobStatus.WORKING, planned_at=now)
    events.job_changed(job.pk, moved=True)
    return job
