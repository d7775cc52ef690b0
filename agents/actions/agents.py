"""Registering, editing, enabling and disabling agents."""

from __future__ import annotations

from django.db import transaction

from .. import dispatch, enqueue
from ..models import Agent
from ._audit import audit


def set_agent_enabled(agent: Agent, enabled: bool, *, user=None) -> None:
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(enabled=enabled)
        agent.enabled = enabled
        audit("enable_agent" if enabled else "disable_agent", actor=user, agent=agent)
        if enabled:
            # Work may have been waiting for exactly this agent, or for any agent at all.
            dispatch.resume_jobs_waiting_for_agents()
            enqueue.dispatch_ready()
