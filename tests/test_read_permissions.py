"""Reads are permission-checked: every page, its htmx fragment and its live socket need the
view permissions the Viewers role grants; a user in no group is told to ask an administrator."""

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse

from agents import team
from agents.models import Agent, Job, SharedState
from dashboard.routing import websocket_urlpatterns
from dashboard.urls import urlpatterns

from .cast import person, user_in

pytestmark = pytest.mark.django_db

READS = [
    "/",
    "/?status=queued",
    "/?q=readable&priority=5",
    "/jobs/{job}/",
    "/agents/",
    "/tools/",
    "/approvals/",
    "/templates/",
    "/schedules/",
]
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "page"}


@pytest.fixture
def job() -> Job:
    job = Job.objects.create(title="readable", description="d" * 20, priority=5)
    SharedState.objects.create(job=job)
    return job


def get(client, path: str, job: Job, htmx: bool):
    return client.get(path.format(job=job.pk), **(HTMX if htmx else {}))


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
@pytest.mark.parametrize("path", READS)
def test_a_user_in_no_group_is_told_to_ask_an_administrator(client, job, path, htmx):
    client.force_login(person("eve"))
    response = get(client, path, job, htmx)
    assert response.status_code == 403
    page = response.content.decode()
    assert "no role yet" in page and "Ask an administrator" in page
    for role in ("Viewers", "Operators", "Agent managers"):
        assert role in page
    assert 'action="/logout/"' in page
    assert "readable" not in page and "researcher" not in page.lower()


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("role", ["Viewers", "Operators", "Agent managers"])
def test_every_role_reads_every_page(client, job, path, htmx, role):
    team.seed()
    client.force_login(user_in(role))
    response = get(client, path, job, htmx)
    assert response.status_code == 200
    assert "no role yet" not in response.content.decode()


@pytest.mark.parametrize("path", READS)
def test_a_superuser_reads_every_page(client, job, path):
    client.force_login(person("alice"))
    assert get(client, path, job, htmx=False).status_code == 200


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
@pytest.mark.parametrize("path", READS)
def test_anonymous_users_are_sent_to_log_in(client, job, path, htmx):
    response = get(client, path, job, htmx)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_no_dashboard_url_answers_a_get_from_a_user_in_no_group(client, job):
    """A read view added later without its check fails here."""
    team.seed()
    subtask = job.subtasks.create(key="research", type="research")
    kwargs = {"job_id": job.pk, "subtask_id": subtask.pk, "slug": Agent.objects.first().slug}
    kwargs["other_id"] = job.pk  # a comparison of two jobs
    kwargs["approval_id"] = kwargs["rule_id"] = 1  # POST only: refused before any lookup
    kwargs["number"] = 1  # an agent's version
    kwargs["schedule_id"] = 1  # a schedule
    kwargs["case_id"] = 1  # a dataset's case
    kwargs["experiment_id"] = kwargs["a"] = kwargs["b"] = kwargs["score_id"] = 1  # evaluation
    client.force_login(person("eve"))
    for pattern in urlpatterns:
        url = reverse(pattern.name, kwargs={k: kwargs[k] for k in pattern.pattern.converters})
        for htmx in (False, True):
            status = get(client, url, job, htmx).status_code
            assert status in (403, 405), f"GET {url} (htmx={htmx}): {status}"


def socket_opens(client, user: User | None, path: str) -> tuple[bool, int | None]:
    """Open `path` through the same middleware as the ASGI application, as `user`."""
    headers = []
    if user is not None:
        client.force_login(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        headers.append((b"cookie", cookie.encode()))

    async def attempt() -> tuple[bool, int | None]:
        app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        communicator = WebsocketCommunicator(app, path, headers=headers)
        opened, code = await communicator.connect()
        if opened:
            await communicator.disconnect()
        return opened, code

    return async_to_sync(attempt)()


@pytest.mark.django_db(transaction=True)  # the consumer reads the session in its own thread
@pytest.mark.parametrize("path", ["/ws/board/", "/ws/jobs/{job}/", "/ws/agents/"])
def test_a_live_socket_is_refused_to_a_user_in_no_group(client, path):
    job = Job.objects.create(title="watched", description="d" * 20, status="completed")
    path = path.format(job=job.pk)
    assert socket_opens(client, person("eve"), path) == (False, 4403)
    assert socket_opens(client, person("carol"), path)[0] is True
    superuser = person("alice")
    assert socket_opens(client, superuser, path)[0] is True
    assert socket_opens(client, None, path) == (False, 4401)
