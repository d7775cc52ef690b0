"""Agent versions: what shapes an agent's work (VERSIONED_FIELDS), kept as one immutable
AgentVersion row per change, numbered from 1 for each agent.

`record` writes the next version from the agent's current fields and moves `Agent.version`
to it; every subtask attempt and LLM call stores the number it ran with. An agent gets its
version 1 when it is created, whichever way (agents.signals.agent_created). A metrics or
enabled-only change is not a version.
"""

from __future__ import annotations

import copy
import difflib

from django.db import transaction
from django.db.models import F

from .models import Agent, AgentVersion

# The fields a version holds, in the order a diff lists them.
VERSIONED_FIELDS = (
    "model",
    "system_prompt",
    "specialties",
    "tools",
    "needs_approval",
    "temperature",
    "max_tokens",
    "max_tool_steps",
)


def snapshot(agent: Agent) -> dict:
    """The agent's versioned fields as plain JSON values."""
    return {name: _plain(getattr(agent, name)) for name in VERSIONED_FIELDS}


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple | list) else value


def pinned(agent: Agent, pins: dict | None) -> Agent:
    """The agent as it was at the version `pins` choose for it ({slug: number}: a job's
    `agent_versions`), or the agent itself when none is chosen (or the version is gone).

    A copy, marked so that saving it is refused: a past version must never overwrite the
    agent's current fields.
    """
    number = (pins or {}).get(agent.slug)
    if not isinstance(number, int) or number == agent.version:
        return agent
    config = _config(agent.pk, number)
    if config is None:
        return agent
    past = copy.copy(agent)
    for name in VERSIONED_FIELDS:
        if name in config:
            setattr(past, name, config[name])
    past.version = number
    past.pinned_version = number
    return past


def _config(agent_id: int, number: int) -> dict | None:
    return (
        AgentVersion.objects.filter(agent_id=agent_id, number=number)
        .values_list("config", flat=True)
        .first()
    )


def changed(agent: Agent, fields: dict) -> list[str]:
    """The versioned fields among `fields` whose value differs from the agent's."""
    return [
        name for name in VERSIONED_FIELDS if name in fields and getattr(agent, name) != fields[name]
    ]


def first(agent: Agent) -> AgentVersion:
    """Version `agent.version` (1 for a new agent) from its fields, as created."""
    return AgentVersion.objects.create(agent=agent, number=agent.version, config=snapshot(agent))


def record(agent: Agent, *, user=None, note: str = "") -> AgentVersion:
    """A new version from the agent's current fields, numbered after its last one, and the
    agent's `version` moved to it (in memory too).

    The increment is an UPDATE of the agent's row: two writers of one agent are ordered by
    its row lock, so each gets its own number (and the unique constraint holds regardless).
    """
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(version=F("version") + 1)
        number = Agent.objects.filter(pk=agent.pk).values_list("version", flat=True).get()
        made = AgentVersion.objects.create(
            agent=agent,
            number=number,
            author=user if getattr(user, "pk", None) else None,
            note=note[:200],
            config=snapshot(agent),
        )
    agent.version = number
    return made


def diff(a: AgentVersion, b: AgentVersion) -> list[tuple[str, object, object]]:
    """(field, value in a, value in b) for each versioned field that differs, in
    VERSIONED_FIELDS order (then any field only an older or newer version has)."""
    names = list(VERSIONED_FIELDS)
    names += sorted((a.config.keys() | b.config.keys()) - set(names))
    return [
        (name, a.config.get(name), b.config.get(name))
        for name in names
        if a.config.get(name) != b.config.get(name)
    ]


def text_diff(old: object, new: object) -> list[str]:
    """A line diff of two texts (a system prompt), as `difflib.unified_diff` lines without
    the file headers: "-removed", "+added", " context", "@@ … @@"."""
    lines = difflib.unified_diff(
        str(old or "").splitlines(), str(new or "").splitlines(), lineterm="", n=2
    )
    return [line for line in lines if not line.startswith(("---", "+++"))]


def label(agent_name: str, number: int | None) -> str:
    """How a version is named on the pages and in the API: "Reviewer v7"."""
    return agent_name if number is None else f"{agent_name} v{number}"
