"""Registering, editing, enabling and disabling agents, and restoring a version of one:
each one transaction and one audit row. `fields` is a validated AgentForm's cleaned data,
from whichever face. An edit of what shapes the agent's work records a new version
(agents.versions) in the same transaction."""

from __future__ import annotations

from django.db import transaction

from .. import dispatch, enqueue, versions
from ..audit import audit
from ..models import Agent, AgentVersion


def register_agent(fields: dict, *, user=None) -> Agent:
    """Raises IntegrityError (nothing written) when the slug is taken meanwhile."""
    with transaction.atomic():
        agent = Agent.objects.create(**fields)  # its version 1 comes with it (agents.signals)
        if user is not None and user.pk:
            AgentVersion.objects.filter(agent=agent, number=agent.version).update(author=user)
        audit("register_agent", actor=user, agent=agent, detail=agent.slug)
        if agent.enabled:
            _enabled()
    return agent


def edit_agent(agent: Agent, fields: dict, *, user=None, note: str = "") -> Agent:
    """Save the changed fields; audited as enable_agent or disable_agent when the edit
    switches the agent, edit_agent otherwise, naming what else changed. A change of a
    versioned field records the agent's next version, with `note`."""
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        changed = [name for name, value in fields.items() if getattr(agent, name) != value]
        reshaped = versions.changed(agent, fields)
        for name in changed:
            setattr(agent, name, fields[name])
        agent.save(update_fields=[*changed, "updated_at"])
        if reshaped:
            versions.record(agent, user=user, note=note)
        others = [name for name in changed if name != "enabled"]
        detail = f"{agent.slug}: {', '.join(others)}" if others else agent.slug
        if "enabled" in changed:
            action = "enable_agent" if agent.enabled else "disable_agent"
        else:
            action = "edit_agent"
        audit(action, actor=user, agent=agent, detail=detail)
        if "enabled" in changed and agent.enabled:
            _enabled()
    return agent


def restore_agent_version(agent: Agent, number: int, *, user=None, note: str = "") -> AgentVersion:
    """Make version `number` current again: the agent's fields set from it and a new version
    equal to it (history is never rewritten). AgentVersion.DoesNotExist for an unknown one."""
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        old = agent.versions.get(number=number)
        fields = {k: v for k, v in old.config.items() if k in versions.VERSIONED_FIELDS}
        for name, value in fields.items():
            setattr(agent, name, value)
        agent.save(update_fields=[*fields, "updated_at"])
        made = versions.record(agent, user=user, note=note or f"Restored from v{number}")
        audit(
            "restore_agent_version",
            actor=user,
            agent=agent,
            detail=f"{agent.slug} v{number} → v{made.number}",
        )
        if agent.enabled:
            _enabled()  # restored specialties may be what waiting work needs
    return made


def set_agent_enabled(agent: Agent, enabled: bool, *, user=None) -> None:
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(enabled=enabled)
        agent.enabled = enabled
        audit("enable_agent" if enabled else "disable_agent", actor=user, agent=agent)
        if enabled:
            _enabled()


def _enabled() -> None:
    # Work may have been waiting for exactly this agent, or for any agent at all.
    dispatch.resume_jobs_waiting_for_agents()
    enqueue.dispatch_ready()


def delete_agent(agent: Agent, *, user=None) -> None:
    """Delete an agent (its audit rows go with it; this one names it, against no agent)."""
    with transaction.atomic():
        slug, name = agent.slug, agent.name
        agent.delete()
        audit("delete_agent", actor=user, detail=f"{slug} ({name})")
