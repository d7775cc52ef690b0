"""Decomposition: the orchestrator's prompt, and a parser that survives real model output.

Models wrap JSON in prose or code fences, or return it broken. `parse_plan` takes any text
and either returns a valid plan or raises PlanError with a message fit to show the model
(one repair round-trip) and the operator. It never raises anything else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import json_repair

# The offline model and the simulator recognise a planning call by this phrase.
DECOMPOSITION_MARKER = "task-decomposition expert"
SYSTEM_PROMPT = f"""You are a {DECOMPOSITION_MARKER} coordinating a team of specialist agents.
Break the user's job into a small number of concrete subtasks (at most {{max_subtasks}}).
Answer with JSON only, no prose, in exactly this shape:
{{{{"subtasks": [{{{{"id": "short-id", "type": "research|coding|review|...",
  "assign_to": "agent slug or empty", "payload": {{{{"description": "what to do"}}}},
  "depends_on": ["ids of subtasks whose results this one needs"]}}}}]}}}}
The team: {{team}}"""

REPAIR_PROMPT = """Your previous answer could not be used: {error}
Answer again with JSON only, in the shape asked for."""

# Common names models use for the default team's specialties.
TYPE_SYNONYMS = {
    "analysis": "research",
    "investigate": "research",
    "investigation": "research",
    "code": "coding",
    "implement": "coding",
    "implementation": "coding",
    "development": "coding",
    "programming": "coding",
    "qa": "review",
    "quality": "review",
    "test": "review",
    "testing": "review",
    "verification": "review",
}

KEY_RE = re.compile(r"[^a-z0-9_-]+")
KEY_CHARS = 64  # Subtask.key's max_length
TYPE_CHARS = 50  # Subtask.type's max_length, and an agent's specialty's
# The team as the planning prompt lists it: a large team must not crowd out the job.
TEAM_MAX_AGENTS = 30
TEAM_MAX_CHARS = 3000
FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class PlanError(ValueError):
    pass


@dataclass
class PlannedSubtask:
    key: str
    type: str
    description: str
    assign_to: str = ""
    depends_on: list[str] = field(default_factory=list)
    payload: dict = field(default_factory=dict)


@dataclass
class Plan:
    subtasks: list[PlannedSubtask]
    notes: list[str] = field(default_factory=list)


def roster(team: list[tuple[str, list[str]]]) -> str:
    """The team as `slug (specialties)`, at most TEAM_MAX_AGENTS of them in TEAM_MAX_CHARS,
    saying how many more exist."""
    listed: list[str] = []
    chars = 0
    for slug, specialties in team[:TEAM_MAX_AGENTS]:
        entry = f"{slug} ({', '.join(specialties)})"
        if chars + len(entry) > TEAM_MAX_CHARS:
            break
        listed.append(entry)
        chars += len(entry) + 2
    text = "; ".join(listed) or "none"
    if (more := len(team) - len(listed)) > 0:
        text += (
            f". {more} more agent{'s are' if more > 1 else ' is'} not listed: leave assign_to "
            "empty and the best agent for the type is chosen"
        )
    return text


def decomposition_messages(
    title: str, description: str, team: list[tuple[str, list[str]]], max_subtasks: int
) -> list[dict]:
    system = SYSTEM_PROMPT.format(max_subtasks=max_subtasks, team=roster(team))
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Job: {title}\n\n{description}"},
    ]


def repair_messages(messages: list[dict], bad_answer: str, error: str) -> list[dict]:
    return [
        *messages,
        {"role": "assistant", "content": bad_answer[:8000]},
        {"role": "user", "content": REPAIR_PROMPT.format(error=error)},
    ]


def normalise_type(raw: str) -> str:
    return _type_name(raw)[:TYPE_CHARS]


def normalise_specialties(names: list[str]) -> list[str]:
    """An agent's specialties named as subtask types are, without duplicates, in order.

    Not cut to TYPE_CHARS: a longer name is refused (agents.models), never silently shortened.
    """
    return list(dict.fromkeys(name for name in map(_type_name, names) if name))


def _type_name(raw: str) -> str:
    kind = KEY_RE.sub("_", raw.strip().lower()).strip("_")
    return TYPE_SYNONYMS.get(kind, kind)


def _key(raw: object) -> str:
    return KEY_RE.sub("-", str(raw).strip().lower()).strip("-")[:KEY_CHARS]


def _extract_json(text: str) -> object:
    fenced = FENCE_RE.search(text)
    candidate = fenced.group(1) if fenced else text
    start = min((i for i in (candidate.find("{"), candidate.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise PlanError("the answer holds no JSON object")
    candidate = candidate[start:]
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    try:
        return json.JSONDecoder().raw_decode(candidate)[0]
    except ValueError:
        pass
    repaired = json_repair.loads(candidate)
    if not isinstance(repaired, dict | list) or not repaired:
        raise PlanError("the answer is not valid JSON")
    return repaired


def _subtask(index: int, item: object) -> PlannedSubtask:
    where = f"subtask {index + 1}"
    if not isinstance(item, dict):
        raise PlanError(f"{where} is not an object")
    kind = item.get("type")
    if not isinstance(kind, str) or not normalise_type(kind):
        raise PlanError(f'{where} has no "type"')
    payload = item.get("payload", {})
    if isinstance(payload, str):
        payload = {"description": payload}
    if not isinstance(payload, dict):
        raise PlanError(f'{where} has a "payload" that is not an object')
    description = payload.get("description") or item.get("description") or ""
    if not isinstance(description, str) or not description.strip():
        raise PlanError(f'{where} has no "payload.description"')
    key = _key(item.get("id", "")) or f"t{index + 1}"
    hint = item.get("assign_to") or ""
    deps = item.get("depends_on") or []
    if isinstance(deps, str | int):
        deps = [deps]
    if not isinstance(deps, list):
        raise PlanError(f'{where} has a "depends_on" that is not a list')
    return PlannedSubtask(
        key=key,
        type=normalise_type(kind),
        description=description.strip(),
        assign_to=hint.strip().lower()[:50] if isinstance(hint, str) else "",
        depends_on=[_key(d) for d in deps],
        payload={**payload, "description": description.strip()},
    )


def _check_acyclic(subtasks: list[PlannedSubtask]) -> None:
    remaining = {s.key: set(s.depends_on) for s in subtasks}
    while remaining:
        ready = [key for key, deps in remaining.items() if not deps]
        if not ready:
            raise PlanError("the dependencies form a cycle among: " + ", ".join(sorted(remaining)))
        for key in ready:
            del remaining[key]
        for deps in remaining.values():
            deps.difference_update(ready)


def parse_plan(text: str, *, max_subtasks: int = 12) -> Plan:
    try:
        data = _extract_json(text or "")
    except PlanError:
        raise
    except Exception as exc:  # json_repair on hostile input: report, never crash the caller
        raise PlanError(f"the answer is not valid JSON ({type(exc).__name__})") from None
    items = data.get("subtasks") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise PlanError('the answer has no non-empty "subtasks" list')

    notes: list[str] = []
    if len(items) > max_subtasks:
        notes.append(f"kept the first {max_subtasks} of {len(items)} subtasks")
        items = items[:max_subtasks]
    subtasks = [_subtask(i, item) for i, item in enumerate(items)]

    seen: set[str] = set()
    for i, sub in enumerate(subtasks):
        if sub.key in seen:
            base, n = sub.key, i + 1
            while sub.key in seen:  # the new name may be taken too, and must fit the column
                sub.key = f"{base[: KEY_CHARS - len(str(n)) - 1]}-{n}"
                n += 1
            notes.append(f"renamed a duplicate id to {sub.key}")
        seen.add(sub.key)
    # Plans number their subtasks now and then: "depends_on": [1] means the first one.
    by_position = {str(i + 1): s.key for i, s in enumerate(subtasks)}
    for sub in subtasks:
        kept = []
        for dep in sub.depends_on:
            dep = dep if dep in seen else by_position.get(dep, dep)
            if dep == sub.key or dep not in seen:
                notes.append(f"dropped dependency {sub.key} -> {dep or '?'}: no such subtask")
            elif dep not in kept:
                kept.append(dep)
        sub.depends_on = kept
    _check_acyclic(subtasks)
    return Plan(subtasks=subtasks, notes=notes)
