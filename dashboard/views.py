import math
from datetime import timedelta

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from agents import actions, quality, state
from agents.forms import AgentForm, BoardFilterForm, JobForm, NewSubtaskForm, SubtaskForm
from agents.models import (
    Agent,
    AuditEntry,
    Job,
    JobStatus,
    LLMCall,
    Subtask,
)
from agents.queries import (
    CARD_ORIGIN,
    ORIGIN_UNUSED,
    TRACE_PAGE,
    agents_with_metrics,
    job_activity,
    job_subtasks,
    subtask_calls,
)

from .access import read_required
from .agent_versions import VersionNoteForm
from .graph import plan_graph
from .sparkline import sparkline_svg

BOARD_CARDS_PER_COLUMN = 25
BOARD_PAGE_SIZE = 50
CARD_UNUSED = ("description", "result", "error")  # a card shows none of these, nor its submitter
SPEND_WINDOW = timedelta(hours=24)


def _board_context(request: HttpRequest, form: JobForm) -> dict:
    """The same few queries however many jobs there are."""
    filters = BoardFilterForm(request.GET)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    narrowed = any(value not in ("", None) for value in chosen.values())
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "filters": filters,
        "query": query.urlencode(),
        "applied": _applied_filters(filters, chosen),
    }
    cards = Job.objects.for_board().select_related(None)
    cards = cards.select_related("experiment_case", *CARD_ORIGIN).defer(
        *CARD_UNUSED, *ORIGIN_UNUSED
    )
    if chosen.get("status"):
        page = Paginator(cards.filtered(**chosen), BOARD_PAGE_SIZE)
        context["page"] = page.get_page(request.GET.get("page"))
        context["status_label"] = JobStatus(chosen["status"]).label
        return context
    jobs = Job.objects.filtered(**chosen)
    if narrowed:  # a search reads each match once, not once per column
        newest, counts = jobs.newest_per_status(BOARD_CARDS_PER_COLUMN)
    else:  # the whole board: column by column, from the (status, created_at) index
        counts = jobs.status_counts()
        newest = {status: jobs.newest_ids(status, BOARD_CARDS_PER_COLUMN) for status in counts}
    shown = cards.in_bulk([pk for ids in newest.values() for pk in ids])
    context["columns"] = [
        {
            "status": value,
            "label": label,
            "count": counts.get(value, 0),
            "jobs": [shown[pk] for pk in newest.get(value, [])],
            "more": max(counts.get(value, 0) - BOARD_CARDS_PER_COLUMN, 0),
        }
        for value, label in JobStatus.choices
    ]
    return context


def _applied_filters(filters: BoardFilterForm, chosen: dict) -> list[tuple[str, str]]:
    """The filter in force, as (label, shown value) pairs, for the board to say it."""
    applied = []
    for name, value in chosen.items():
        if value in ("", None):
            continue
        field = filters.fields[name]
        shown = dict(getattr(field, "choices", ())).get(value, value)
        applied.append((field.label or name.capitalize(), str(shown)))
    return applied


@read_required("board")
def board(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/board.html", _board_context(request, JobForm()))


@login_required
@require_POST
@permission_required("agents.add_job", raise_exception=True)
def submit_job(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            job = actions.submit_job(**form.cleaned_data, user=request.user)
        except actions.SubmissionLimit as limit:
            form.add_error(None, str(limit))
            status = 429
        else:
            if request.htmx:
                context = {"form": JobForm(), "submitted": job}
                return render(request, "dashboard/board.html#submit-form", context)
            return redirect("dash-board")
    if request.htmx:  # htmx swaps only 2xx answers: the form comes back with its errors
        return render(request, "dashboard/board.html#submit-form", {"form": form})
    return render(request, "dashboard/board.html", _board_context(request, form), status=status)


@read_required("job")
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    # The header shows progress and submitter; the agents of a card are the board's.
    jobs = Job.objects.for_board().prefetch_related(None).select_related(*CARD_ORIGIN)
    job = get_object_or_404(jobs, pk=job_id)
    subtasks = job_subtasks(job.pk)
    context = {
        "job": job,
        "subtasks": subtasks,
        "graph": plan_graph(subtasks),
        # Controls are drawn per user, on the page only: live fragments are shared by all.
        "can_operate": request.user.has_perm("agents.change_job"),
        "state": state.for_page(job.pk),
        "audit": job_activity(job.pk),
    }
    if job.awaiting_review and context["can_operate"]:
        agents = SubtaskForm.agent_choices()
        context["review"] = [
            (
                sub,
                SubtaskForm(
                    initial=_subtask_initial(sub), prefix=f"s{sub.pk}", agent_choices=agents
                ),
            )
            for sub in subtasks
        ]
        context["new_subtask"] = NewSubtaskForm(job=job, prefix="new")
    return render(request, "dashboard/job_detail.html", context)


@read_required("job")
def subtask_detail(request: HttpRequest, subtask_id: int) -> HttpResponse:
    """A subtask whole: its result, and its call trace with prompts and responses, by pages."""
    sub = get_object_or_404(Subtask.objects.select_related("job", "agent"), pk=subtask_id)
    calls = Paginator(subtask_calls(sub), TRACE_PAGE).get_page(request.GET.get("page"))
    return render(request, "dashboard/subtask_detail.html", {"sub": sub, "calls": calls})


def _subtask_initial(sub: Subtask) -> dict:
    return {"description": sub.description, "type": sub.type, "agent": sub.assign_hint or None}


def _review_failed(request: HttpRequest, job: Job, form=None) -> HttpResponse:
    if form is not None and form.errors:
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"Not saved: {errors}")
    else:
        messages.error(request, f"Job #{job.pk} is {job.status}: its plan can no longer change.")
    return redirect(job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def subtask_edit(request: HttpRequest, subtask_id: int) -> HttpResponse:
    sub = get_object_or_404(Subtask.objects.select_related("job"), pk=subtask_id)
    form = SubtaskForm(request.POST, prefix=f"s{sub.pk}")
    if not form.is_valid():
        return _review_failed(request, sub.job, form)
    if not actions.edit_subtask(sub, **form.cleaned_data, user=request.user):
        return _review_failed(request, sub.job)
    return redirect(sub.job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def subtask_delete(request: HttpRequest, subtask_id: int) -> HttpResponse:
    sub = get_object_or_404(Subtask.objects.select_related("job"), pk=subtask_id)
    if not actions.delete_subtask(sub, user=request.user):
        return _review_failed(request, sub.job)
    return redirect(sub.job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def subtask_add(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    form = NewSubtaskForm(request.POST, job=job, prefix="new")
    if not form.is_valid():
        return _review_failed(request, job, form)
    if actions.add_subtask(job, **form.cleaned_data, user=request.user) is None:
        return _review_failed(request, job)
    return redirect(job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def job_approve(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    if not actions.approve_plan(job, user=request.user):
        return _review_failed(request, job)
    return redirect(job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    if not actions.cancel_job(job, user=request.user):
        messages.error(request, f"Job #{job.pk} is {job.status}: there is nothing to cancel.")
    return redirect(job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    if not actions.retry_job(job, user=request.user):
        message = f"Job #{job.pk} is {job.status}: only a failed or cancelled job resumes."
        messages.error(request, message)
    return redirect(job)


@login_required
@require_POST
@permission_required("agents.change_job", raise_exception=True)
def subtask_retry(request: HttpRequest, subtask_id: int) -> HttpResponse:
    sub = get_object_or_404(Subtask, pk=subtask_id)
    if not actions.retry_subtask(sub, user=request.user):
        messages.error(request, f"Subtask {sub.key} is {sub.status}: it cannot be retried now.")
    return redirect(sub.job)


def _agents_context(form: AgentForm | None) -> dict:
    agents = agents_with_metrics(Agent.objects.all())
    # A window, not all time: a sum over every call ever made grows with the history.
    recent = LLMCall.objects.filter(created_at__gte=timezone.now() - SPEND_WINDOW)
    by_model = (
        recent.values("model")
        .annotate(
            calls=Count("id"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by("model")
    )
    return {"agents": agents, "form": form, "by_model": by_model}


@read_required("agents")
def agent_list(request: HttpRequest) -> HttpResponse:
    form = AgentForm() if request.user.has_perm("agents.add_agent") else None
    context = _agents_context(form)
    context["audit"] = AuditEntry.objects.filter(agent__isnull=False).select_related(
        "actor", "agent"
    )[:20]
    hours = settings.QUALITY_CHART_H
    rows = quality.by_agent(context["agents"], hours)
    for row in rows:
        label = f"Mean score per hour, last {hours} hours"
        row.chart = sparkline_svg(row.series, label=label, top=1.0)
    context["quality"] = rows
    context["quality_notices"] = [(row.agent, s) for row in rows for s in row.dropped]
    context["quality_settings"] = {
        "threshold": settings.QUALITY_ALERT_BELOW,
        "window_days": round(settings.QUALITY_WINDOW_H / 24, 1),
        "min_samples": settings.QUALITY_MIN_SAMPLES,
        "hours": hours,
    }
    return render(request, "dashboard/agents.html", context)


@login_required
@require_POST
@permission_required("agents.add_agent", raise_exception=True)
def agent_create(request: HttpRequest) -> HttpResponse:
    form = AgentForm(request.POST)
    if form.is_valid():
        actions.register_agent(form.cleaned_data, user=request.user)
        return redirect("dash-agents")
    return render(request, "dashboard/agents.html", _agents_context(form), status=400)


@login_required
@permission_required("agents.change_agent", raise_exception=True)
def agent_edit(request: HttpRequest, slug: str) -> HttpResponse:
    agent = get_object_or_404(Agent, slug=slug)
    form = AgentForm(request.POST or None, instance=agent)
    note = VersionNoteForm(request.POST or None, prefix="version")
    if request.method == "POST" and form.is_valid() and note.is_valid():
        actions.edit_agent(agent, form.cleaned_data, user=request.user, **note.cleaned_data)
        return redirect("dash-agents")
    status = 400 if request.method == "POST" else 200
    context = {"agent": agent, "form": form, "note": note}
    return render(request, "dashboard/agent_edit.html", context, status=status)


@login_required
@require_POST
@permission_required("agents.change_agent", raise_exception=True)
def agent_toggle(request: HttpRequest, slug: str) -> HttpResponse:
    agent = get_object_or_404(Agent, slug=slug)
    actions.set_agent_enabled(agent, not agent.enabled, user=request.user)
    if request.htmx:
        agent = next(a for a in _agents_context(None)["agents"] if a.pk == agent.pk)
        return render(request, "dashboard/agents.html#agent-row", {"agent": agent})
    return redirect("dash-agents")


def locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """What django-axes answers, on either login page, to a username and address locked out."""
    wait = get_cool_off(request) or timedelta(0)
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    page = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    page["Retry-After"] = str(int(wait.total_seconds()))
    return page
