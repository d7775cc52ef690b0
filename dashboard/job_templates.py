"""Job template pages: list, create, edit, delete, and submit one in a click (from the list
or the board's "From a template" menu).

Reads need the recurring pages' permissions; keeping templates needs add_/change_/
delete_jobtemplate, submitting one add_job, as a job's form does. Every write is an action of
agents.actions.templates.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import IntegrityError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agents import actions
from agents.actions import templates as template_actions
from agents.models import JobTemplate, Schedule
from agents.placeholders import PLACEHOLDERS
from agents.template_forms import JobTemplateForm

from .access import read_required

NAME_TAKEN = "A template has this name already."


def _templates() -> list[JobTemplate]:
    schedules = Prefetch("schedules", queryset=Schedule.objects.only("name", "template_id"))
    rows = list(JobTemplate.objects.defer("description").prefetch_related(schedules))
    for row in rows:
        row.submit_token = uuid.uuid4()  # one job per click, however often it is clicked
    return rows


@read_required("recurring")
def template_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/job_templates.html", {"templates": _templates()})


def _placeholders() -> list[tuple[str, str]]:
    return [
        (name if name.startswith("{") else "{" + name + "}", meaning)
        for name, meaning in PLACEHOLDERS.items()
    ]


def _edit_page(
    request: HttpRequest, form: JobTemplateForm, template: JobTemplate | None
) -> HttpResponse:
    context = {"form": form, "template": template, "placeholders": _placeholders()}
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/job_template_edit.html", context, status=status)


@login_required
@permission_required("agents.add_jobtemplate", raise_exception=True)
def template_create(request: HttpRequest) -> HttpResponse:
    form = JobTemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            saved = template_actions.create_template(form.cleaned_data, user=request.user)
        except IntegrityError:  # the same name, saved meanwhile
            form.add_error("name", NAME_TAKEN)
        else:
            messages.success(request, f"Template {saved.name} saved.")
            return redirect("dash-templates")
    return _edit_page(request, form, None)


@login_required
@permission_required("agents.change_jobtemplate", raise_exception=True)
def template_edit(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(JobTemplate, name=slug)
    form = JobTemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and form.is_valid():
        try:
            changed = template_actions.edit_template(template, form.cleaned_data, user=request.user)
        except IntegrityError:
            form.add_error("name", NAME_TAKEN)
        else:
            saved = f"saved ({', '.join(changed)})" if changed else "unchanged"
            messages.success(request, f"Template {form.cleaned_data['name']} {saved}.")
            return redirect("dash-templates")
    return _edit_page(request, form, JobTemplate.objects.get(pk=template.pk))


@login_required
@require_POST
@permission_required("agents.delete_jobtemplate", raise_exception=True)
def template_delete(request: HttpRequest, slug: str) -> HttpResponse:
    template = get_object_or_404(JobTemplate, name=slug)
    try:
        template_actions.delete_template(template, user=request.user)
    except template_actions.TemplateInUse as in_use:
        messages.error(request, f"Template {template.name} is not deleted: {in_use}")
    else:
        messages.success(request, f"Template {template.name} deleted.")
    return redirect("dash-templates")


def _token(request: HttpRequest) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.POST.get("submit_token", ""))
    except ValueError:
        return None


@login_required
@require_POST
@permission_required("agents.add_job", raise_exception=True)
def template_submit(request: HttpRequest, slug: str) -> HttpResponse:
    """Submit a job from the template now; to the new job's page, or back where the button
    was (`next`, the board's menu) with a message naming it."""
    template = get_object_or_404(JobTemplate, name=slug)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = ""
    try:
        job = template_actions.submit_template(
            template, user=request.user, submit_token=_token(request)
        )
    except (actions.SubmissionLimit, template_actions.TemplateRefused) as refused:
        messages.error(request, str(refused))
        return redirect(back or "dash-templates")
    messages.success(request, f"Job #{job.pk} {job.title} submitted from template {template.name}.")
    return redirect(back or job)


urlpatterns: list = [
    path("templates/", template_list, name="dash-templates"),
    path("templates/new/", template_create, name="dash-template-create"),
    path("templates/<slug:slug>/edit/", template_edit, name="dash-template-edit"),
    path("templates/<slug:slug>/delete/", template_delete, name="dash-template-delete"),
    path("templates/<slug:slug>/submit/", template_submit, name="dash-template-submit"),
]
