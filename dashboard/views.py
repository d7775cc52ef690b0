from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Prefetch, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents import actions
from agents.models import SUBTASK_IN_FLIGHT, Agent, Job, JobStatus, LLMCall, Subtask

from .forms import AgentForm, JobForm

BOARD_CARDS_PER_COLUMN = 50


def _board_context(form: JobForm) -> dict:
    columns = []
    counts = Job.objects.status_counts()
    for status, label in JobStatus.choices:
        jobs = Job.objects.for_board().filter(status=status)[:BOARD_CARDS_PER_COLUMN]
        columns.append({"status": status, "label": label, "count": counts[status], "jobs": jobs})
    return {"columns": columns, "form": form}


@login_required
def board(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/board.html", _board_context(JobForm()))


@login_required
@require_POST
@permission_required("agents.add_job", raise_exception=True)
def submit_job(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST)
    if form.is_valid():
        job = actions.submit_job(**form.cleaned_data, user=request.user)
        if request.htmx:
            context = {"form": JobForm(), "submitted": job}
            return render(request, "dashboard/board.html#submit-form", context)
        return redirect("dash-board")
    if request.htmx:
        return render(request, "dashboard/board.html#submit-form", {"form": form})
    return render(request, "dashboard/board.html", _board_context(form), status=400)


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.for_board(), pk=job_id)
    subtasks = (
        job.subtasks.select_related("agent")
        .prefetch_related(
            Prefetch("depends_on", queryset=Subtask.objects.only("key")),
            Prefetch("calls", queryset=LLMCall.objects.order_by("pk")),
        )
        .order_by("pk")
    )
    context = {
        "job": job,
        "subtasks": subtasks,
        "state": getattr(job, "state", None),
        "audit": job.audit.select_related("actor", "subtask")[:50],
    }
    return render(request, "dashboard/job_detail.html", context)


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
        messages.error(request, f"Job #{job.pk} is {job.status}: only a failed job can be retried.")
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
    agents = Agent.objects.annotate(
        load=Count("subtasks", filter=Q(subtasks__status__in=SUBTASK_IN_FLIGHT))
    )
    by_model = (
        LLMCall.objects.values("model")
        .annotate(
            calls=Count("id"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by("model")
    )
    return {"agents": agents, "form": form, "by_model": by_model}


@login_required
def agent_list(request: HttpRequest) -> HttpResponse:
    form = AgentForm() if request.user.has_perm("agents.add_agent") else None
    return render(request, "dashboard/agents.html", _agents_context(form))


@login_required
@require_POST
@permission_required("agents.add_agent", raise_exception=True)
def agent_create(request: HttpRequest) -> HttpResponse:
    form = AgentForm(request.POST)
    if form.is_valid():
        agent = form.save()
        actions.audit("register_agent", actor=request.user, agent=agent, detail=agent.slug)
        if agent.enabled:
            actions.set_agent_enabled(agent, True, user=request.user)
        return redirect("dash-agents")
    return render(request, "dashboard/agents.html", _agents_context(form), status=400)
