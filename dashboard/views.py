from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents import pipeline
from agents.models import SUBTASK_IN_FLIGHT, Agent, Job, JobStatus, Subtask

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
def submit_job(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST)
    if form.is_valid():
        job = pipeline.submit_job(**form.cleaned_data, user=request.user)
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
        .prefetch_related(Prefetch("depends_on", queryset=Subtask.objects.only("key")))
        .order_by("pk")
    )
    state = getattr(job, "state", None)
    context = {"job": job, "subtasks": subtasks, "state": state}
    return render(request, "dashboard/job_detail.html", context)


def _agents_context(form: AgentForm | None) -> dict:
    agents = Agent.objects.annotate(
        load=Count("subtasks", filter=Q(subtasks__status__in=SUBTASK_IN_FLIGHT))
    )
    return {"agents": agents, "form": form}


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
        form.save()
        return redirect("dash-agents")
    return render(request, "dashboard/agents.html", _agents_context(form), status=400)
