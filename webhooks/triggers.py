"""From status moves to deliveries.

`on_announcements` is registered with agents.events: it runs in the flusher thread after
commit (or in a reconciler pass relaying what a killed process left in the outbox), and only
asks the database (once per SUBSCRIPTIONS_TTL_S per process, models.py) when a move could be
an event. For each event some endpoint wants it reads the job, builds the payload and makes
one delivery per subscribed endpoint (`create_deliveries`), all in one transaction, each then
sent by its own `deliver` task on commit. So the outbox row is deleted only once its
deliveries exist: no Celery message stands between the two to be lost. An announcement about
an agent, not a job (`agent.quality_dropped`), carries its whole payload: it reads nothing but
the endpoints.

`wanted` tells agents.events, in the moving transaction, which moves some endpoint wants:
those go through the outbox (agents.outbox) and reach us even if their process is killed
before its flusher runs. The announcement's id keys the deliveries (`message_id`, unique),
so an event relayed twice makes no second delivery.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from agents import quality
from agents.calls import BUDGET_EXCEEDED
from agents.events import Announcement
from agents.models import Job, JobStatus, Subtask, SubtaskStatus

from .models import Delivery, Endpoint, EventType, message_id, send_on_commit

RESULT_CHARS = 4000

# What a move to a status can mean; the task decides which applies (it reads the job).
JOB_TRIGGERS: dict[str, frozenset[str]] = {
    JobStatus.COMPLETED: frozenset({EventType.JOB_COMPLETED}),
    JobStatus.FAILED: frozenset({EventType.JOB_FAILED, EventType.BUDGET_EXCEEDED}),
    JobStatus.CANCELLED: frozenset({EventType.JOB_CANCELLED}),
    JobStatus.WAITING: frozenset({EventType.JOB_AWAITING_REVIEW}),
}
SUBTASK_TRIGGERS: dict[str, frozenset[str]] = {
    SubtaskStatus.FAILED: frozenset({EventType.SUBTASK_FAILED}),
}
# Announcements that are an event whatever they hold, each with its payload's fields.
AGENT_TRIGGERS: dict[str, frozenset[str]] = {
    quality.DROPPED: frozenset({EventType.AGENT_QUALITY_DROPPED}),
}
QUALITY_FIELDS = ("agent", "specialty", "mean", "n", "threshold", "window_h")


def triggers(announcement: Announcement) -> frozenset[str]:
    if announcement.event in AGENT_TRIGGERS:
        return AGENT_TRIGGERS[announcement.event]
    table = {"job.status": JOB_TRIGGERS, "subtask.status": SUBTASK_TRIGGERS}.get(
        announcement.event, {}
    )
    return table.get(announcement.data.get("status"), frozenset())


def wanted(announcement: Announcement) -> bool:
    """Whether some enabled endpoint may want this move (most moves ask nothing)."""
    possible = triggers(announcement)
    return bool(possible and possible & Endpoint.objects.subscribed_events())


def on_announcements(announcements: list[Announcement]) -> None:
    """The agents.events hook: the deliveries of each move that some endpoint wants."""
    wanted = None
    moves = []
    facts = []
    for announcement in announcements:
        possible = triggers(announcement)
        if not possible:
            continue
        if wanted is None:
            wanted = Endpoint.objects.subscribed_events()  # not for moves that cannot matter
        if possible & wanted and announcement.event in AGENT_TRIGGERS:
            facts.append(announcement)
        elif possible & wanted:
            data = announcement.data
            kind, object_id = (
                ("subtask", data["subtask_id"])
                if announcement.event == "subtask.status"
                else ("job", data["job_id"])
            )
            moves.append((kind, object_id, data["status"], announcement.id))
    if moves or facts:
        # One transaction: should it fail, the hook raises and the outbox row stays.
        with transaction.atomic():
            for move in moves:
                create_deliveries(*move)
            for fact in facts:
                create_agent_deliveries(fact)


def events_for(job: Job, status: str) -> list[str]:
    """The webhook events a job's move to `status` is."""
    if status == JobStatus.COMPLETED:
        return [EventType.JOB_COMPLETED]
    if status == JobStatus.CANCELLED:
        return [EventType.JOB_CANCELLED]
    if status == JobStatus.FAILED:
        # agents.calls.BUDGET_EXCEEDED starts every budget error (UNPRICED included).
        over_budget = job.error.startswith(BUDGET_EXCEEDED)
        return [EventType.JOB_FAILED, *([EventType.BUDGET_EXCEEDED] if over_budget else [])]
    if status == JobStatus.WAITING and job.review_plan and job.planned_at is not None:
        return [EventType.JOB_AWAITING_REVIEW]  # the status reason is AWAITS_REVIEW
    return []


def payload(event: str, job: Job, status: str, subtask: Subtask | None = None) -> dict:
    result = job.result
    data = {
        "job_id": job.pk,
        "title": job.title,
        "status": status,
        "error": job.error,
        "result": result[:RESULT_CHARS],
        "result_truncated": len(result) > RESULT_CHARS,
        "url": settings.PUBLIC_URL + job.get_absolute_url(),
    }
    if subtask is not None:
        data["subtask"] = {
            "id": subtask.pk,
            "key": subtask.key,
            "type": subtask.type,
            "status": status,
            "error": subtask.error,
        }
    moment = timezone.now().isoformat().replace("+00:00", "Z")
    return {"type": event, "timestamp": moment, "data": data}


def create_deliveries(kind: str, object_id: int, status: str, key: str) -> list[int]:
    """One delivery per endpoint subscribed to each event the move is; their ids."""
    subtask = None
    if kind == "subtask":
        subtask = Subtask.objects.select_related("job").filter(pk=object_id).first()
        job = subtask.job if subtask else None
        events = [EventType.SUBTASK_FAILED] if subtask and status == SubtaskStatus.FAILED else []
    else:
        job = Job.objects.filter(pk=object_id).first()
        events = events_for(job, status) if job else []
    if job is None or not events:
        return []
    bodies = {event: payload(event, job, status, subtask) for event in events}
    return _deliver(bodies, key, job)


def agent_payload(event: str, data: dict) -> dict:
    """An agent's quality fell: which agent, in which specialty, its mean over how many
    scores, the threshold and the window (hours) it was measured over."""
    fields = {name: data.get(name) for name in QUALITY_FIELDS}
    fields["url"] = settings.PUBLIC_URL + reverse("dash-agents")
    moment = timezone.now().isoformat().replace("+00:00", "Z")
    return {"type": event, "timestamp": moment, "data": fields}


def create_agent_deliveries(announcement: Announcement) -> list[int]:
    """One delivery per endpoint subscribed to the event an agent's announcement is."""
    events = sorted(AGENT_TRIGGERS.get(announcement.event, ()))
    bodies = {event: agent_payload(event, announcement.data) for event in events}
    return _deliver(bodies, announcement.id, None)


def _deliver(bodies: dict[str, dict], key: str, job: Job | None) -> list[int]:
    """For each event and its payload, a delivery to each enabled endpoint subscribed to it
    (none twice for one announcement: `key` is its id); the new deliveries' ids."""
    endpoints = [e for e in Endpoint.objects.filter(enabled=True) if set(e.events) & set(bodies)]
    created = []
    for event, data in bodies.items():
        body = json.dumps(data, separators=(",", ":"))
        for endpoint in endpoints:
            if event not in endpoint.events:
                continue
            try:
                with transaction.atomic():
                    delivery = Delivery.objects.create(
                        endpoint=endpoint,
                        event=event,
                        message_id=message_id(key, endpoint.pk, event),
                        body=body,
                        job=job,
                    )
                    send_on_commit(delivery.pk, 1)
            except IntegrityError:  # made already by an earlier delivery of this message
                continue
            created.append(delivery.pk)
    return created
