"""Dataset pages: list, cases, import and export, and adding jobs.

Reads need the evaluation pages' permissions; every write is an action of
agents.actions.datasets, which checks the user's permission again (a 403 either way).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from agents import datasets
from agents.actions import datasets as actions
from agents.dataset_forms import (
    AddJobsForm,
    CaseForm,
    DatasetChoiceForm,
    DatasetForm,
    ImportForm,
    newest_completed,
)
from agents.models import Case, Dataset, Job, JobStatus

from .access import read_required

CASES_PER_PAGE = 25


def _list_page(request: HttpRequest, form: DatasetForm | None, status: int = 200) -> HttpResponse:
    rows = Dataset.objects.annotate(case_count=Count("cases")).select_related("created_by")
    context = {"datasets": rows, "form": form}
    return render(request, "dashboard/datasets.html", context, status=status)


@read_required("evaluation")
def dataset_list(request: HttpRequest) -> HttpResponse:
    form = DatasetForm() if request.user.has_perm("agents.add_dataset") else None
    return _list_page(request, form)


@login_required
@require_POST
@permission_required("agents.add_dataset", raise_exception=True)
def dataset_create(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(request.POST)
    if form.is_valid():
        try:
            dataset = actions.create_dataset(form.cleaned_data, user=request.user)
        except IntegrityError:  # the same name, saved meanwhile
            form.add_error("name", "A dataset has this name already.")
        else:
            messages.success(request, f"Dataset {dataset.name} created.")
            return redirect(dataset)
    return _list_page(request, form, status=400)


def _detail_page(
    request: HttpRequest,
    dataset: Dataset,
    *,
    case_form: CaseForm | None = None,
    import_form: ImportForm | None = None,
    import_errors: datasets.ImportRefused | None = None,
    status: int = 200,
) -> HttpResponse:
    cases = Paginator(dataset.cases.all(), CASES_PER_PAGE)
    may_add = request.user.has_perm("agents.add_case")
    context = {
        "dataset": dataset,
        "page": cases.get_page(request.GET.get("page")),
        "case_form": (case_form or CaseForm()) if may_add else None,
        "import_form": (import_form or ImportForm()) if may_add else None,
        "import_errors": import_errors,
        "may_change": request.user.has_perm("agents.change_case"),
        "may_delete": request.user.has_perm("agents.delete_case"),
        "limits": {
            "bytes": datasets.IMPORT_MAX_BYTES,
            "cases": datasets.IMPORT_MAX_CASES,
            "separator": datasets.TAG_SEPARATOR,
        },
    }
    return render(request, "dashboard/dataset_detail.html", context, status=status)


@read_required("evaluation")
def dataset_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _detail_page(request, get_object_or_404(Dataset, slug=slug))


@login_required
@permission_required("agents.change_dataset", raise_exception=True)
def dataset_edit(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    form = DatasetForm(request.POST or None, instance=dataset)
    if request.method == "POST" and form.is_valid():
        try:
            actions.edit_dataset(dataset, form.cleaned_data, user=request.user)
        except IntegrityError:
            form.add_error("name", "A dataset has this name already.")
        else:
            messages.success(request, f"{dataset.name} saved.")
            return redirect(dataset)
    status = 400 if request.method == "POST" else 200
    context = {"dataset": Dataset.objects.get(pk=dataset.pk), "form": form}
    return render(request, "dashboard/dataset_edit.html", context, status=status)


@login_required
@require_POST
@permission_required("agents.delete_dataset", raise_exception=True)
def dataset_delete(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    actions.delete_dataset(dataset, user=request.user)
    messages.success(request, f"Dataset {dataset.name} deleted.")
    return redirect("dash-datasets")


@login_required
@require_POST
@permission_required("agents.add_case", raise_exception=True)
def case_add(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    form = CaseForm(request.POST)
    if form.is_valid():
        try:
            case = actions.add_case(dataset, form.cleaned_data, user=request.user)
        except datasets.TooManyCases as full:
            form.add_error(None, str(full))
        else:
            messages.success(request, f"Case #{case.pk} {case.title} added.")
            return redirect(dataset)
    return _detail_page(request, dataset, case_form=form, status=400)


def _case(slug: str, case_id: int) -> Case:
    return get_object_or_404(Case.objects.select_related("dataset"), pk=case_id, dataset__slug=slug)


@login_required
@permission_required("agents.change_case", raise_exception=True)
def case_edit(request: HttpRequest, slug: str, case_id: int) -> HttpResponse:
    case = _case(slug, case_id)
    form = CaseForm(request.POST or None, instance=case)
    if request.method == "POST" and form.is_valid():
        actions.edit_case(case, form.cleaned_data, user=request.user)
        messages.success(request, f"Case #{case.pk} saved.")
        return redirect(case.dataset)
    status = 400 if request.method == "POST" else 200
    context = {"case": _case(slug, case_id), "form": form}
    return render(request, "dashboard/case_edit.html", context, status=status)


@login_required
@require_POST
@permission_required("agents.delete_case", raise_exception=True)
def case_delete(request: HttpRequest, slug: str, case_id: int) -> HttpResponse:
    case = _case(slug, case_id)
    actions.delete_case(case, user=request.user)
    messages.success(request, f"Case #{case_id} {case.title} deleted.")
    return redirect(case.dataset)


@login_required
@require_POST
@permission_required("agents.add_case", raise_exception=True)
def dataset_import(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    form = ImportForm(request.POST, request.FILES)
    refused = None
    if form.is_valid():
        data, fmt = form.read()
        try:
            cases = actions.import_cases(dataset, data, fmt, user=request.user)
        except datasets.ImportRefused as exc:
            refused = exc
        except datasets.TooManyCases as full:
            form.add_error(None, str(full))
        else:
            messages.success(request, f"{len(cases)} cases imported.")
            return redirect(dataset)
    return _detail_page(
        request, dataset, import_form=form, import_errors=refused, status=422 if refused else 400
    )


@read_required("evaluation")
def dataset_export(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    response = StreamingHttpResponse(
        datasets.export_jsonl(dataset), content_type="application/x-ndjson; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.jsonl"'
    return response


def _target(request: HttpRequest, form: DatasetChoiceForm) -> Dataset:
    """The chosen dataset, or a new one of the name given."""
    return form.cleaned_data["dataset"] or actions.create_dataset(
        {"name": form.cleaned_data["new_name"], "description": ""}, user=request.user
    )


def _report(request: HttpRequest, dataset: Dataset, added: list, skipped: int) -> None:
    if added:
        link = f"{len(added)} added to {dataset.name}"
        messages.success(request, f"{link}; {skipped} skipped." if skipped else f"{link}.")
    else:
        messages.info(
            request,
            f"Nothing added to {dataset.name}: {skipped} skipped (not completed, "
            "or in the dataset already).",
        )


def _form_errors(request: HttpRequest, form) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)


@login_required
@require_POST
@permission_required("agents.add_case", raise_exception=True)
def add_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """The job page's "Add to dataset": only a completed job is added, once a dataset."""
    job = get_object_or_404(Job, pk=job_id)
    form = DatasetChoiceForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    elif job.status != JobStatus.COMPLETED:
        messages.error(request, f"Job #{job.pk} is {job.status}: only a completed job is added.")
    else:
        with transaction.atomic():  # a new dataset only with its case
            dataset = _target(request, form)
            added, _ = actions.add_jobs(dataset, [job], user=request.user)
        if added:
            messages.success(request, f"Job #{job.pk} added to {dataset.name}.")
        else:
            messages.info(request, f"Job #{job.pk} is in {dataset.name} already.")
    return redirect(job)


@login_required
@require_POST
@permission_required("agents.add_case", raise_exception=True)
def add_board_jobs(request: HttpRequest) -> HttpResponse:
    """The completed jobs matching the board's filter (the newest JOBS_MAX) into a dataset;
    back to the board as it was filtered."""
    form = AddJobsForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("dash-board")
    chosen = form.board_filter()
    shown = {name: value for name, value in chosen.items() if value not in ("", None)}
    back = reverse("dash-board") + (f"?{urlencode(shown)}" if shown else "")
    jobs, more = newest_completed(chosen)
    with transaction.atomic():  # a new dataset only with its cases
        dataset = _target(request, form)
        added, skipped = actions.add_jobs(dataset, jobs, user=request.user)
    _report(request, dataset, added, skipped)
    if more:
        messages.info(
            request,
            f"Only the newest {datasets.JOBS_MAX} matching jobs were taken: narrow the filter "
            "to add the others.",
        )
    return redirect(back)


urlpatterns = [
    path("datasets/", dataset_list, name="dash-datasets"),
    path("datasets/new/", dataset_create, name="dash-dataset-create"),
    path("datasets/from-board/", add_board_jobs, name="dash-dataset-add-board"),
    path("datasets/from-job/<int:job_id>/", add_job, name="dash-dataset-add-job"),
    path("datasets/<slug:slug>/", dataset_detail, name="dash-dataset"),
    path("datasets/<slug:slug>/edit/", dataset_edit, name="dash-dataset-edit"),
    path("datasets/<slug:slug>/delete/", dataset_delete, name="dash-dataset-delete"),
    path("datasets/<slug:slug>/cases/add/", case_add, name="dash-case-add"),
    path("datasets/<slug:slug>/cases/<int:case_id>/edit/", case_edit, name="dash-case-edit"),
    path("datasets/<slug:slug>/cases/<int:case_id>/delete/", case_delete, name="dash-case-delete"),
    path("datasets/<slug:slug>/import/", dataset_import, name="dash-dataset-import"),
    path("datasets/<slug:slug>/export.jsonl", dataset_export, name="dash-dataset-export"),
]
