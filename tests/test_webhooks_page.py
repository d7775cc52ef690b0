"""The Webhooks page (operators): register an endpoint, see its secret once, read the
delivery log, re-send; the same in Django admin."""

import pytest
from django.contrib.auth.models import User

from agents.models import Job, JobStatus
from webhooks import transport, triggers
from webhooks.models import Delivery, DeliveryStatus, Endpoint
from webhooks.tasks import deliver

from .cast import person
from .webhook_receiver import running_receiver

pytestmark = pytest.mark.django_db


def register(client, **fields):
    data = {"url": "http://127.0.0.1:9/hook", "events": ["job.completed"], "enabled": "on"}
    return client.post("/webhooks/", {**data, **fields})


def test_the_nav_links_the_page_for_operators(client, operator):
    page = client.get("/")
    assert 'href="/webhooks/"' in page.content.decode()


def test_viewers_may_not_open_it(client):
    client.force_login(person("carol"))
    assert client.get("/webhooks/").status_code == 403
    assert 'href="/webhooks/"' not in client.get("/").content.decode()


def test_anonymous_users_are_sent_to_log_in(client):
    assert client.get("/webhooks/").status_code == 302


def test_a_private_target_is_refused_by_default(client, operator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    answer = register(client)
    assert answer.status_code == 400
    assert "private networks" in answer.content.decode()
    assert not Endpoint.objects.exists()


def test_the_generated_secret_is_shown_once(client, operator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    answer = register(client, description="CI")
    assert answer.status_code == 201
    assert answer["Cache-Control"] == "no-store"
    endpoint = Endpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and transport.secret_key(endpoint.secret)
    assert endpoint.secret in answer.content.decode()
    assert endpoint.created_by == operator and endpoint.events == ["job.completed"]
    for page in ("/webhooks/", f"/webhooks/{endpoint.pk}/"):
        assert endpoint.secret not in client.get(page).content.decode()


def test_a_secret_can_be_given(client, operator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    secret = transport.new_secret()
    assert register(client, secret=secret).status_code == 201
    assert Endpoint.objects.get().secret == secret
    assert register(client, secret="not base64!").status_code == 400


def test_events_must_be_chosen(client, operator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert register(client, events=[]).status_code == 400
    assert register(client, events=["job.exploded"]).status_code == 400


def test_an_endpoint_can_be_edited_and_disabled(client, operator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    endpoint = Endpoint.objects.create(url="http://127.0.0.1:9/a", events=["job.failed"])
    answer = client.post(
        f"/webhooks/{endpoint.pk}/",
        {"url": "http://127.0.0.1:9/b", "events": ["job.failed", "budget.exceeded"]},
    )
    assert answer.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.url.endswith("/b") and not endpoint.enabled
    assert endpoint.events == ["job.failed", "budget.exceeded"]


def test_the_delivery_log_shows_each_attempt_and_resends(
    client, operator, settings, sent_tasks, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_BASE_S = 0.01
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    with running_receiver() as receiver:
        receiver.answer(500, body="the receiver is down")
        endpoint = Endpoint.objects.create(url=receiver.url, events=["job.completed"])
        job = Job.objects.create(title="T", description="D", status=JobStatus.COMPLETED)
        [delivery_id] = triggers.create_deliveries("job", job.pk, JobStatus.COMPLETED, "k")
        deliver.apply(args=(delivery_id, 1))
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert page.count('class="attempt"') == 2
    assert "the receiver is down" in page and "gave_up" in page
    assert f'action="/webhooks/deliveries/{delivery_id}/resend/"' in page

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(f"/webhooks/deliveries/{delivery_id}/resend/")
    assert answer.status_code == 302
    assert Delivery.objects.get(pk=delivery_id).status == DeliveryStatus.PENDING
    assert sent_tasks == [("webhooks.tasks.deliver", (delivery_id, 3))]


def test_a_viewer_cannot_resend(client):
    client.force_login(person("carol"))
    endpoint = Endpoint.objects.create(url="http://127.0.0.1:9/a", events=["job.failed"])
    delivery = Delivery.objects.create(
        endpoint=endpoint, event="job.failed", message_id="msg_1", body="{}", status="failed"
    )
    assert client.post(f"/webhooks/deliveries/{delivery.pk}/resend/").status_code == 403
    assert Delivery.objects.get().status == DeliveryStatus.FAILED


def test_admin_shows_the_secret_once_and_never_in_a_form(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    answer = admin_client.post(
        "/admin/webhooks/endpoint/add/",
        {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"], "enabled": "on"},
    )
    assert answer.status_code == 200
    endpoint = Endpoint.objects.get()
    assert endpoint.secret in answer.content.decode()
    assert endpoint.created_by == User.objects.get(username="alice")
    change = admin_client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/")
    assert change.status_code == 200 and endpoint.secret not in change.content.decode()
    for page in ("endpoint", "delivery"):
        assert admin_client.get(f"/admin/webhooks/{page}/").status_code == 200


def test_admin_resends_deliveries(admin_client, sent_tasks):
    endpoint = Endpoint.objects.create(url="http://127.0.0.1:9/a", events=["job.failed"])
    delivery = Delivery.objects.create(
        endpoint=endpoint, event="job.failed", message_id="msg_1", body="{}", status="failed"
    )
    assert admin_client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/").status_code == 200
    admin_client.post(
        "/admin/webhooks/delivery/", {"action": "resend", "_selected_action": [delivery.pk]}
    )
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
