"""Bad input is refused in words, never answered with a 500: NUL and other unstorable text
(422 at its JSON pointer), JSON nested past the bound (400), a body over
DATA_UPLOAD_MAX_MEMORY_SIZE (413), an id filter out of range (422), a body that cannot be
decoded (400, from a handler that does not read it again)."""

import json

import pytest
from django.test import Client

from agents.jsonvalues import JSON_MAX_DEPTH
from agents.models import Approval

from .api_support import PROBLEM
from .paused import decide_url, paused, paused_tool_call

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]
HUGE = "99999999999999999999"  # past 2**64


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def post_raw(client, url: str, text: str | bytes):
    return client.generic("POST", url, text, content_type="application/json")


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    return response.json()


def pointers(response) -> list[str]:
    return [error["pointer"] for error in problem(response, 422)["errors"]]


def still_pending(approval: Approval) -> bool:
    approval.refresh_from_db()
    return approval.decision == Approval.Decision.PENDING


# NUL, lone surrogates and non-finite numbers: PostgreSQL cannot store them.


def test_a_nul_in_edited_arguments_is_a_422_at_its_pointer(operator_api):
    approval = paused_tool_call()
    url = f"/api/v1/approvals/{approval.pk}/decide"
    body = {"action": "edit", "arguments": {"url": "x\u0000"}}
    answer = operator_api.post(url, body, format="json")
    assert pointers(answer) == ["#/arguments/url"]
    assert "NUL" in answer.json()["errors"][0]["detail"]
    as_text = {"action": "edit", "arguments": json.dumps({"list": ["ok", "x\u0000"]})}
    assert pointers(operator_api.post(url, as_text, format="json")) == ["#/arguments/list/1"]
    in_a_key = '{"action": "edit", "arguments": {"k\\u0000": 1}}'
    assert pointers(post_raw(operator_api, url, in_a_key)) == ["#/arguments"]
    surrogate = '{"action": "edit", "arguments": {"s": "\\ud800"}}'
    assert pointers(post_raw(operator_api, url, surrogate)) == ["#/arguments/s"]
    infinite = '{"action": "edit", "arguments": {"n": 1e999}}'
    assert pointers(post_raw(operator_api, url, infinite)) == ["#/arguments/n"]
    assert still_pending(approval)


def test_a_nul_in_edited_messages_points_at_the_message(operator_api):
    approval = paused()
    messages = [{"role": "user", "content": "Say hello\u0000"}]
    answer = operator_api.post(
        f"/api/v1/approvals/{approval.pk}/decide",
        {"action": "edit", "messages": messages},
        format="json",
    )
    assert pointers(answer) == ["#/messages/0/content"]
    assert still_pending(approval)


def test_the_decide_form_refuses_a_nul_in_words(client, operator):
    approval = paused_tool_call()
    page = client.post(
        decide_url(approval), {"action": "edit", "arguments": '{"url": "x\\u0000"}'}, follow=True
    )
    assert "Not decided: The arguments are not accepted" in page.content.decode()
    rejected = client.post(
        decide_url(approval), {"action": "reject", "feedback": "No\x00"}, follow=True
    )
    assert "Not decided: The feedback holds a NUL character" in rejected.content.decode()
    step = paused()
    edited = client.post(decide_url(step), {"action": "edit", "content": "A\x00"}, follow=True)
    assert "Not decided: The content holds a NUL character" in edited.content.decode()
    assert still_pending(approval) and still_pending(step)


# Nesting: one bound, whatever Python's recursion limit.


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 1000, 100_000])
def test_deep_json_is_a_400_on_every_json_entry_point(operator_api, depth):
    approval = paused_tool_call()
    for url, body in [
        ("/api/v1/jobs", nested(depth)),
        (f"/api/v1/jobs?x={depth}", '{"title": "t", "description": ' + nested(depth) + "}"),
        (
            f"/api/v1/approvals/{approval.pk}/decide",
            '{"action": "edit", "arguments": {"a": ' + nested(depth) + "}}",
        ),
    ]:
        answer = problem(post_raw(operator_api, url, body), 400)
        assert f"deeper than {JSON_MAX_DEPTH} levels" in answer["detail"]
    as_text = {"action": "edit", "arguments": json.dumps({"a": 1})[:-1] + nested(depth) + "}"}
    answer = operator_api.post(f"/api/v1/approvals/{approval.pk}/decide", as_text, format="json")
    assert pointers(answer) == ["#/arguments"]
    assert still_pending(approval)


def test_json_within_the_bound_is_taken(operator_api):
    approval = paused_tool_call()
    arguments = {"key": "poem", "value": json.loads(nested(JSON_MAX_DEPTH - 2))}
    answer = operator_api.post(
        f"/api/v1/approvals/{approval.pk}/decide",
        {"action": "edit", "arguments": arguments},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["edited"] == arguments


def test_the_decide_form_refuses_deep_arguments_in_words(client, operator):
    approval = paused_tool_call()
    page = client.post(
        decide_url(approval), {"action": "edit", "arguments": nested(1000)}, follow=True
    )
    assert f"deeper than {JSON_MAX_DEPTH} levels" in page.content.decode()
    assert still_pending(approval)


# Size: DATA_UPLOAD_MAX_MEMORY_SIZE is a 413, for the API and for pages.


def test_a_30_mb_body_is_a_413_problem(operator_api):
    body = b'{"title": "' + b"x" * (30 << 20) + b'", "description": "long enough text"}'
    answer = problem(post_raw(operator_api, "/api/v1/jobs", body), 413)
    assert answer["title"] == "Request Entity Too Large"
    assert "larger than 2,621,440 bytes" in answer["detail"]


def test_the_bound_is_the_setting(operator_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    small = {"title": "Haiku", "description": "A haiku about the sea."}
    assert operator_api.post("/api/v1/jobs", small, format="json").status_code == 201
    problem(operator_api.post("/api/v1/jobs", {**small, "description": "y" * 1000}), 413)


def test_a_page_post_over_the_bound_is_a_413_page(client, operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    approval = paused()
    answer = client.post(decide_url(approval), {"action": "reject", "feedback": "z" * 2000})
    assert answer.status_code == 413
    assert "That was too large to take" in answer.content.decode()
    assert still_pending(approval)


# Ids out of range: 422 for a filter, 404 for a path, on SQLite and on PostgreSQL.


@pytest.mark.parametrize(
    "query, parameter",
    [
        (f"/api/v1/approvals?job={HUGE}", "job"),
        ("/api/v1/approvals?job=9223372036854775808", "job"),
        ("/api/v1/jobs/{job}/state/diff?from=" + HUGE, "from"),
        ("/api/v1/jobs/{job}/state/diff?to=" + HUGE, "to"),
        ("/api/v1/jobs?priority=" + HUGE, "priority"),
    ],
)
def test_an_id_filter_out_of_range_is_a_422(operator_api, query, parameter):
    job = paused().job_id
    answer = problem(operator_api.get(query.format(job=job)), 422)
    assert [error["parameter"] for error in answer["errors"]] == [parameter]


@pytest.mark.parametrize(
    "path",
    [
        "jobs/{n}",
        "jobs/{n}/calls",
        "jobs/{n}/state",
        "jobs/{n}/state/versions",
        "jobs/{n}/state/versions/{n}",
        "jobs/{job}/state/versions/{n}",
        "subtasks/{n}",
        "approvals/{n}",
    ],
)
def test_a_path_id_out_of_range_is_a_404(operator_api, path):
    job = paused().job_id
    problem(operator_api.get("/api/v1/" + path.format(n=HUGE, job=job)), 404)


@pytest.mark.parametrize(
    "path", ["jobs/{n}/cancel", "jobs/{n}/subtasks", "subtasks/{n}/retry", "approvals/{n}/decide"]
)
def test_a_path_id_out_of_range_is_a_404_for_actions_too(operator_api, path):
    problem(operator_api.post("/api/v1/" + path.format(n=HUGE), {}, format="json"), 404)


# handler400 reads neither the body nor the CSRF cookie.


def test_a_form_in_utf16_is_a_400_page_not_a_500():
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "x" * 32
    answer = client.generic(
        "POST",
        "/login/",
        "username=a&password=b".encode("utf-16"),
        content_type="application/x-www-form-urlencoded; charset=utf-16",
    )
    assert answer.status_code == 400
    assert "That request could not be read" in answer.content.decode()
