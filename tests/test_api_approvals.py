"""Approvals through the API: list (pending or decided), read one, and decide: approve, edit
and approve, reject with a reason; problems for bad input (422) and a step moved on (409)."""

import pytest

from agents import actions
from agents.models import Approval, AuditEntry, Job, Subtask, SubtaskStatus, ToolCall

from .api_support import PROBLEM, token_client
from .paused import paused, paused_tool_call

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]


def decide(client, approval: Approval, **body):
    return client.post(f"/api/v1/approvals/{approval.pk}/decide", body, format="json")


def test_pending_approvals_are_listed_newest_first_with_what_would_be_sent(operator_api):
    older, newer = paused(title="Older"), paused(title="Newer")
    decide(operator_api, older, action="approve")

    pending = operator_api.get("/api/v1/approvals?pending=true").json()["results"]
    assert [a["id"] for a in pending] == [newer.pk]
    item = pending[0]
    assert item["pending"] is True and item["decision"] == ""
    assert item["subtask"] == newer.subtask_id and item["subtask_key"] == "poem"
    assert item["proposed"] == newer.proposed and item["tool"] is None
    assert item["why"] == "agent writer needs approval"

    everything = operator_api.get("/api/v1/approvals").json()["results"]
    assert [a["id"] for a in everything] == [newer.pk, older.pk]
    decided = operator_api.get("/api/v1/approvals?pending=false").json()["results"]
    assert [(a["id"], a["decision"], a["decided_by"]) for a in decided] == [
        (older.pk, "approved", "bob")
    ]
    of_job = operator_api.get(f"/api/v1/approvals?job={newer.job_id}").json()["results"]
    assert [a["id"] for a in of_job] == [newer.pk]

    bad = operator_api.get("/api/v1/approvals?pending=perhaps")
    assert bad.status_code == 422 and bad["Content-Type"] == PROBLEM


def test_one_approval(operator_api):
    approval = paused_tool_call()
    data = operator_api.get(f"/api/v1/approvals/{approval.pk}").json()
    assert data["tool"] == "write_state" and data["proposed"] == {"key": "poem"}
    missing = operator_api.get("/api/v1/approvals/999999")
    assert missing.status_code == 404 and missing.json()["detail"] == "No approval 999999."


def test_approve_edit_and_reject(operator_api, users):
    approval = paused()
    data = decide(operator_api, approval, action="edit", content="A limerick.").json()
    assert data["decision"] == "edited" and data["pending"] is False
    assert data["edited"][-1] == {"role": "user", "content": "A limerick."}
    assert Subtask.objects.get(pk=approval.subtask_id).status == SubtaskStatus.QUEUED

    other = paused()
    messages = [{"role": "user", "content": "Just say hello."}]
    data = decide(operator_api, other, action="edit", messages=messages).json()
    assert data["edited"] == messages

    third = paused()
    data = decide(operator_api, third, action="reject", feedback="Shorter, please.").json()
    assert (data["decision"], data["feedback"]) == ("rejected", "Shorter, please.")
    entry = AuditEntry.objects.get(action="approval.reject")
    assert entry.actor == users["operator"] and "Shorter, please." in entry.detail


def test_a_tool_call_is_edited_with_an_object(operator_api):
    approval = paused_tool_call()
    response = decide(operator_api, approval, action="edit", arguments=["a", "list"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/arguments"
    data = decide(operator_api, approval, action="edit", arguments={"key": "haiku"}).json()
    assert data["decision"] == "edited"
    assert ToolCall.objects.get(pk=approval.tool_call_id).arguments == '{"key": "haiku"}'


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"action": "reject"}, "#/feedback"),
        ({"action": "reject", "feedback": "  "}, "#/feedback"),
        ({"action": "edit"}, "#/content"),
        ({"action": "edit", "content": ""}, "#/content"),
        ({"action": "maybe"}, "#/action"),
        ({"action": "edit", "messages": [{"role": "user"}]}, "#/content"),
    ],
)
def test_bad_decisions_are_422_and_change_nothing(operator_api, body, pointer):
    approval = paused()
    response = decide(operator_api, approval, **body)
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == PROBLEM
    assert pointer in [e["pointer"] for e in response.json()["errors"]]
    assert Approval.objects.get(pk=approval.pk).pending
    assert Subtask.objects.get(pk=approval.subtask_id).status == SubtaskStatus.AWAITING_APPROVAL


def test_a_decided_or_cancelled_step_is_a_conflict(operator_api, users):
    approval = paused()
    decide(operator_api, approval, action="approve")
    again = decide(operator_api, approval, action="approve")
    assert again.status_code == 409
    assert again.json()["detail"] == "This step was already decided: approved by bob."

    cancelled = paused()
    actions.cancel_job(Job.objects.get(pk=cancelled.job_id), user=users["operator"])
    response = decide(operator_api, cancelled, action="approve")
    assert response.status_code == 409
    assert "is cancelled: its approval can no longer be decided" in response.json()["detail"]
    assert operator_api.get(f"/api/v1/approvals/{cancelled.pk}").json()["pending"] is False


@pytest.mark.parametrize("role", ["viewer", "manager", "nobody"])
def test_only_an_operator_decides(users, role):
    approval = paused()
    response = decide(token_client(users[role]), approval, action="approve")
    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).pending


def test_a_viewer_reads_approvals_and_nobody_without_a_role_does(users):
    approval = paused()
    assert token_client(users["viewer"]).get(f"/api/v1/approvals/{approval.pk}").status_code == 200
    assert token_client(users["nobody"]).get("/api/v1/approvals").status_code == 403
