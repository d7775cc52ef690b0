"""A job template as the job it submits: its placeholders filled at a moment in a zone, its
pinned agent versions checked (an agent or a version may be gone since it was saved)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import placeholders
from .models import Agent, AgentVersion, Job, JobTemplate

TITLE_CHARS = Job._meta.get_field("title").max_length
DESCRIPTION_CHARS = Job._meta.get_field("description").max_length
MAX_PINS = 50


def pin_errors(pins: object) -> list[str]:
    """What is wrong with `pins` ({agent slug: version number}): its shape, agents that do
    not exist, versions they do not have. Empty when every pin can run."""
    if not isinstance(pins, dict):
        return ['Give agent versions as {"agent-slug": number}.']
    if len(pins) > MAX_PINS:
        return [f"At most {MAX_PINS} agent versions (there are {len(pins)})."]
    errors = [
        f"{str(slug)[:60]}: a version is a whole number from 1 (not {str(number)[:20]})."
        for slug, number in pins.items()
        if isinstance(number, bool) or not isinstance(number, int) or number < 1
    ]
    if errors:
        return errors
    agents = dict(Agent.objects.filter(slug__in=list(pins)).values_list("slug", "pk"))
    kept = set(
        AgentVersion.objects.filter(agent_id__in=agents.values()).values_list(
            "agent__slug", "number"
        )
    )
    for slug, number in pins.items():
        if slug not in agents:
            errors.append(f"No agent {str(slug)[:60]}.")
        elif (slug, number) not in kept:
            have = sorted(n for s, n in kept if s == slug)
            listed = ", ".join(f"v{n}" for n in have) or "none"
            errors.append(f"{slug} has no version {number} (it has {listed}).")
    return errors


def check_pins(pins: object) -> None:
    """ValidationError listing pin_errors, if any."""
    if errors := pin_errors(pins):
        raise ValidationError(errors)


def _fit(text: str, limit: int) -> str:
    # The form refuses a template whose widest filling passes the limit; one saved some
    # other way is cut rather than refused at submit time.
    return text if len(text) <= limit else text[: limit - 1] + "…"


def job_fields(
    template: JobTemplate, *, at: datetime | None = None, tz_name: str | None = None
) -> dict:
    """The keyword arguments of actions.submit_job for `template` submitted at `at` (now)
    in the zone `tz_name` (settings.TIME_ZONE): title and description filled."""
    at = at or timezone.now()
    tz_name = tz_name or settings.TIME_ZONE
    return {
        "title": _fit(placeholders.fill(template.title, at, tz_name), TITLE_CHARS),
        "description": _fit(
            placeholders.fill(template.description, at, tz_name), DESCRIPTION_CHARS
        ),
        "priority": template.priority,
        "budget_tokens": template.budget_tokens,
        "budget_cost": template.budget_cost,
        "review_plan": template.review_plan,
        "tags": template.tag_list,
        "template": template,
        "agent_versions": dict(template.agent_versions or {}),
    }
