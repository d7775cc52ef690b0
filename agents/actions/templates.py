"""Job templates: each write checked, changed, audited in one transaction, and a template
submitted as a job.

`fields` are a valid JobTemplateForm's cleaned data (agents.template_forms), from whichever
face: tags as a list. Every action checks the user's permission itself (PermissionDenied);
`user=None` is the system acting (a schedule's run may pass its owner or None).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction
from django.db.models import ProtectedError

from .. import job_templates
from ..audit import audit
from ..models import AuditEntry, Job, JobTemplate
from ..tags import as_text
from .checks import require
from .jobs import submit_job


class TemplateInUse(ValueError):
    """A template that schedules still submit: the message names them."""


class TemplateRefused(ValueError):
    """A template that cannot be submitted as it stands (a pinned version is gone)."""


def _row(fields: dict) -> dict:
    row = dict(fields)
    if "tags" in row:
        row["tags"] = as_text(list(row["tags"] or []))
    if "agent_versions" in row:
        row["agent_versions"] = row["agent_versions"] or {}
    return row


def create_template(fields: dict, *, user=None) -> JobTemplate:
    """Raises IntegrityError (nothing written) when its name was taken meanwhile."""
    require(user, "add_jobtemplate")
    with transaction.atomic():
        template = JobTemplate.objects.create(
            **_row(fields), created_by=user if user is not None and user.pk else None
        )
        audit("create_template", actor=user, detail=f"{template.name}: {template.title}")
    return template


def edit_template(template: JobTemplate, fields: dict, *, user=None) -> list[str]:
    """Save what changed; the names of the fields changed, audited once. Raises
    IntegrityError (nothing written) when a new name was taken meanwhile."""
    require(user, "change_jobtemplate")
    row = _row(fields)
    with transaction.atomic():
        locked = JobTemplate.objects.select_for_update().get(pk=template.pk)
        changed = [name for name, value in row.items() if getattr(locked, name) != value]
        if not changed:
            return []
        for name in changed:
            setattr(locked, name, row[name])
        locked.save(update_fields=[*changed, "updated_at"])
        audit("edit_template", actor=user, detail=f"{locked.name}: {', '.join(changed)}")
    for name in changed:
        setattr(template, name, row[name])
    return changed


def _in_use(template: JobTemplate) -> TemplateInUse | None:
    names = list(template.schedules.order_by("name").values_list("name", flat=True)[:11])
    if not names:
        return None
    listed = ", ".join(names[:10]) + (" and more" if len(names) > 10 else "")
    plural = "s" if len(names) > 1 else ""
    return TemplateInUse(
        f"schedule{plural} {listed} submit{'' if plural else 's'} it: delete "
        f"{'them' if plural else 'it'} or give {'them' if plural else 'it'} another template first."
    )


def delete_template(template: JobTemplate, *, user=None) -> None:
    """Jobs made from it keep their fields (their link to it is cleared). Raises TemplateInUse
    while a schedule submits it."""
    require(user, "delete_jobtemplate")
    with transaction.atomic():
        locked = JobTemplate.objects.select_for_update().get(pk=template.pk)
        if refused := _in_use(locked):
            raise refused
        detail = f"{locked.name}: {locked.title}"
        try:
            with transaction.atomic():
                locked.delete()
        except ProtectedError:  # a schedule made meanwhile
            raise _in_use(locked) or TemplateInUse("a schedule submits it.") from None
        audit("delete_template", actor=user, detail=detail)


def submit_template(
    template: JobTemplate,
    *,
    user=None,
    at: datetime | None = None,
    tz_name: str | None = None,
    submit_token: uuid.UUID | None = None,
    check_limit: bool = True,
) -> Job:
    """Submit the template as a job, placeholders filled at `at` (now) in `tz_name`
    (settings.TIME_ZONE). The same `submit_token` twice gives one job.

    Raises SubmissionLimit as submit_job does (unless check_limit=False: a schedule's run),
    TemplateRefused when a pinned agent or version is gone.
    """
    require(user, "add_job")
    if submit_token and (existing := Job.objects.filter(submit_token=submit_token).first()):
        return existing
    if errors := job_templates.pin_errors(template.agent_versions or {}):
        raise TemplateRefused(
            f"Template {template.name} pins versions that cannot run: {' '.join(errors)} "
            "Edit its pinned versions."
        )
    fields = job_templates.job_fields(template, at=at, tz_name=tz_name)
    with transaction.atomic():
        job = submit_job(**fields, user=user, submit_token=submit_token, check_limit=check_limit)
        # One entry per submit, as any job's, saying where it came from.
        AuditEntry.objects.filter(job=job, action="submit").update(
            detail=f"{job.title[:1800]} (from template {template.name})"
        )
    return job
