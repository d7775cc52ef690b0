"""webhooks.actions: registering, editing and deleting an endpoint and re-sending a delivery
each write one audit row (through agents.actions.audit) in the transaction of the change."""

import pytest

from webhooks import actions
from webhooks.models import Delivery, DeliveryStatus, Endpoint

from .auditing import AuditFailed, audit_rows, make_audit_fail
from .cast import person

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/hook"
FIELDS = {"url": URL, "description": "CI", "events": ["job.failed"], "enabled": True}


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint.objects.create(**FIELDS)


@pytest.fixture
def delivery(endpoint) -> Delivery:
    return Delivery.objects.create(
        endpoint=endpoint, event="job.failed", message_id="msg_1", body="{}", status="failed"
    )


def test_registering_is_one_row_and_the_secret_is_generated_or_kept():
    bob = person("bob")
    made = actions.register_endpoint({**FIELDS, "secret": ""}, user=bob)
    given = actions.register_endpoint({**FIELDS, "secret": "whsec_" + "A" * 32}, user=bob)
    assert made.secret.startswith("whsec_") and given.secret == "whsec_" + "A" * 32
    assert made.created_by == bob
    assert audit_rows() == [("register_webhook_endpoint", "bob", URL)] * 2


def test_an_edit_and_a_delete_are_a_row_each(endpoint, delivery):
    bob = person("bob")
    actions.edit_endpoint(endpoint, {**FIELDS, "enabled": False}, user=bob)
    assert not Endpoint.objects.get().enabled
    actions.delete_endpoint(endpoint, user=bob)
    assert not Endpoint.objects.exists() and not Delivery.objects.exists()
    assert audit_rows() == [
        ("edit_webhook_endpoint", "bob", URL),
        ("delete_webhook_endpoint", "bob", URL),
    ]


def test_a_resend_is_one_row_and_one_still_being_sent_writes_none(delivery, sent_tasks):
    assert actions.resend_delivery(delivery, user=person("bob"))
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
    assert not actions.resend_delivery(Delivery.objects.get(), user=person("bob"))
    assert audit_rows() == [("resend_webhook_delivery", "bob", f"msg_1 to {URL}")]


@pytest.mark.parametrize(
    "act",
    [
        lambda delivery: actions.register_endpoint({**FIELDS, "url": URL + "/2"}),
        lambda delivery: actions.edit_endpoint(delivery.endpoint, {**FIELDS, "enabled": False}),
        lambda delivery: actions.delete_endpoint(delivery.endpoint),
        lambda delivery: actions.resend_delivery(delivery),
    ],
    ids=["register", "edit", "delete", "resend"],
)
def test_a_failed_audit_undoes_the_change(
    delivery, monkeypatch, django_capture_on_commit_callbacks, act
):
    before = (list(Endpoint.objects.values()), list(Delivery.objects.values()))
    make_audit_fail(monkeypatch)
    with django_capture_on_commit_callbacks() as after_commit, pytest.raises(AuditFailed):
        act(delivery)
    assert (list(Endpoint.objects.values()), list(Delivery.objects.values())) == before
    assert after_commit == []  # nothing is sent, nor the subscriptions forgotten


def test_the_pages_and_the_admin_write_through_the_actions(
    client, admin_client, settings, delivery, sent_tasks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    client.force_login(person("bob"))
    form = {"url": URL, "events": ["job.completed"], "enabled": "on"}
    assert client.post("/webhooks/", form).status_code == 201
    assert client.post(f"/webhooks/{delivery.endpoint_id}/", form).status_code == 302
    client.post(f"/webhooks/deliveries/{delivery.pk}/resend/")
    admin_client.post("/admin/webhooks/endpoint/add/", form)
    url = f"/admin/webhooks/endpoint/{delivery.endpoint_id}/delete/"
    admin_client.post(url, {"post": "yes"})
    assert [row[:2] for row in audit_rows()] == [
        ("register_webhook_endpoint", "bob"),
        ("edit_webhook_endpoint", "bob"),
        ("resend_webhook_delivery", "bob"),
        ("register_webhook_endpoint", "alice"),
        ("delete_webhook_endpoint", "alice"),
    ]
