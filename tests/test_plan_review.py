"""Plan review: the job stops after planning; what the operator edits is what runs."""

import pytest

from agents.models import Job, JobStatus, LLMCall

from .cast import PASSWORD
from .stack import login, post, submit, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_an_edited_and_approved_plan_is_what_the_specialists_receive(stack, seeded):
    client = login(stack.base_url, "bob", PASSWORD)
    submit(client, "Reviewed", review_plan="on")
    job = wait_until(
        lambda: Job.objects.filter(title="Reviewed", status=JobStatus.WAITING).first(),
        "the plan to await review",
    )
    assert "review" in job.status_reason
    assert not LLMCall.objects.filter(job=job, purpose="subtask").exists()

    research = job.subtasks.get(key="research")
    review = job.subtasks.get(key="review")
    token = client.cookies["csrftoken"]
    edited = "Compare three open-source URL shorteners, edited by the operator."
    response = client.post(
        f"/subtasks/{research.pk}/edit/",
        data={
            f"s{research.pk}-description": edited,
            f"s{research.pk}-type": "analysis",
            f"s{research.pk}-agent": "researcher",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 200
    assert post(client, f"/subtasks/{review.pk}/delete/") == 200
    client.post(
        f"/jobs/{job.pk}/subtasks/add/",
        data={
            "new-key": "docs",
            "new-type": "writing",
            "new-description": "Write the README.",
            "new-depends_on": ["coding"],
            "csrfmiddlewaretoken": token,
        },
    )
    assert set(job.subtasks.values_list("key", flat=True)) == {"research", "coding", "docs"}
    assert not LLMCall.objects.filter(job=job, purpose="subtask").exists()

    assert post(client, f"/jobs/{job.pk}/approve/") == 200
    job = wait_until(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).first(), "the job"
    )
    research.refresh_from_db()
    assert research.type == "research"  # "analysis" is a synonym of the specialty
    sent = LLMCall.objects.get(subtask=research).messages[-1]["content"]
    assert edited in sent
    docs = job.subtasks.get(key="docs")
    assert LLMCall.objects.filter(subtask=docs, error="").count() == 1
    assert "Result of coding" in LLMCall.objects.get(subtask=docs).messages[-1]["content"]
    actions = set(job.audit.values_list("action", flat=True))
    assert {"edit_subtask", "delete_subtask", "add_subtask", "approve_plan"} <= actions


def test_a_plan_cannot_change_once_approved(stack, seeded):
    client = login(stack.base_url, "bob", PASSWORD)
    submit(client, "Too late")
    job = wait_until(
        lambda: Job.objects.filter(title="Too late", status=JobStatus.COMPLETED).first(), "job"
    )
    sub = job.subtasks.first()
    page = client.post(
        f"/subtasks/{sub.pk}/edit/",
        data={
            f"s{sub.pk}-description": "changed",
            f"s{sub.pk}-type": "research",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    assert "its plan can no longer change" in page.text
    sub.refresh_from_db()
    assert sub.description != "changed"
