from django import template
from django.template.loader import render_to_string

from agents.dataset_forms import AddJobsForm, DatasetChoiceForm
from agents.datasets import JOBS_MAX
from agents.forms import BoardFilterForm

register = template.Library()


@register.simple_tag(takes_context=True)
def add_to_dataset(context, job) -> str:
    """The job page's "Add to dataset" control, for those who may add cases. Drawn alike
    whatever the job's status (the region is not swapped live, and a page followed live must
    show what its reload does): adding a job that has not completed is refused with a
    message."""
    request = context.get("request")
    if request is None or not request.user.has_perm("agents.add_case"):
        return ""
    form = DatasetChoiceForm(auto_id="add-ds-%s")
    return render_to_string(
        "dashboard/_job_add_to_dataset.html", {"job": job, "form": form}, request=request
    )


@register.simple_tag(takes_context=True)
def board_add_to_dataset(context) -> str:
    """The board's "Add these jobs to a dataset": the current filter, carried along."""
    request = context.get("request")
    if request is None or not request.user.has_perm("agents.add_case"):
        return ""
    filters = BoardFilterForm(request.GET)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    carried = [(name, value) for name, value in chosen.items() if value not in ("", None)]
    context = {
        "form": AddJobsForm(auto_id="board-ds-%s"),
        "filter": carried,
        "jobs_max": JOBS_MAX,
    }
    return render_to_string("dashboard/_board_add_to_dataset.html", context, request=request)
