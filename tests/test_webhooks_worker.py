"""End to end through real processes: an operator registers an endpoint on the Webhooks
page, a job runs on the stack's Celery worker, and the worker delivers `job.completed`,
signed, to a real receiver that fails once first."""

import json

import pytest
from standardwebhooks import Webhook

from agents.models import Job
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Outcome

from .cast import PASSWORD
from .stack import login, start_stack, submit, wait_until, wait_until_terminal
from .webhook_receiver import running_receiver

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def hooks_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """A stack of its own: its processes allow the test's loopback receiver and retry fast."""
    with django_db_blocker.unblock():
        running = start_stack(
            tmp_path_factory.mktemp("hooks-stack"),
            exclusive=True,
            WEBHOOK_ALLOW_PRIVATE="true",
            WEBHOOK_RETRY_BASE_S="0.2",
        )
    yield running
    running.stop()


def test_a_worker_delivers_a_signed_event_and_retries_a_500(hooks_stack, seeded):
    browser = login(hooks_stack.base_url, "bob", PASSWORD)
    with running_receiver() as receiver:
        receiver.answer(500, 200)
        page = browser.post(
            "/webhooks/",
            data={
                "url": receiver.url,
                "events": ["job.completed", "job.failed"],
                "enabled": "on",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
        )
        assert page.status_code == 201, page.text
        endpoint = Endpoint.objects.get()
        assert endpoint.secret in page.text  # shown this once

        submit(browser, "Hooked job", "Summarise the news of the day.")
        job = Job.objects.filter(title="Hooked job").latest("pk")
        [job] = wait_until_terminal([job.pk])
        assert job.status == "completed"
        first, second = receiver.wait_for(2)

    for request in (first, second):
        payload = Webhook(endpoint.secret).verify(request.body, request.headers)
        assert payload["type"] == "job.completed"
        assert payload["data"]["job_id"] == job.pk
        assert payload["data"]["result"] == job.result[:4000]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]

    delivery = wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).first(),
        "the delivery to be logged as delivered",
        timeout=10,
    )
    log = list(delivery.attempt_log.values_list("number", "outcome", "status_code"))
    assert log == [(1, Outcome.FAILED, 500), (2, Outcome.DELIVERED, 200)]
    assert json.loads(delivery.body)["data"]["job_id"] == job.pk
    # The page shows the log.
    shown = browser.get(f"/webhooks/{endpoint.pk}/").text
    assert shown.count('class="attempt"') == 2 and "answer 500" in shown
