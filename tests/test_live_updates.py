"""Real WebSocket connections to the running stack: pushes arrive, anonymous users are refused."""

import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .conftest import PASSWORD
from .stack import login

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def ws_url(stack, path: str) -> str:
    return stack.base_url.replace("http://", "ws://") + path


def test_it_refuses_an_anonymous_websocket(stack):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(stack, "/ws/board/"), origin=stack.base_url, open_timeout=5)
    assert refused.value.response.status_code == 403


def test_it_refuses_a_foreign_origin(stack, seeded):
    client = login(stack.base_url, "bob", PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid']}"
    with pytest.raises(InvalidStatus):
        connect(
            ws_url(stack, "/ws/board/"),
            origin="http://evil.example",
            additional_headers={"Cookie": cookie},
            open_timeout=5,
        )


def test_it_pushes_status_changes_to_the_board(stack, seeded):
    client = login(stack.base_url, "bob", PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid']}"
    with connect(
        ws_url(stack, "/ws/board/"), origin=stack.base_url, additional_headers={"Cookie": cookie}
    ) as socket:
        client.post(
            "/jobs/submit/",
            data={
                "title": "Pushed job",
                "description": "Summarise the news of the day.",
                "priority": "5",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = socket.recv(timeout=deadline - time.monotonic())
            seen.append(message)
            if 'hx-swap-oob="afterbegin:#cards-completed"' in message:
                break
    fragments = "\n".join(seen)
    assert "Pushed job" in fragments
    # The card entered the board queued and moved, live, to the completed column.
    assert 'hx-swap-oob="afterbegin:#cards-queued"' in fragments
    assert 'hx-swap-oob="afterbegin:#cards-completed"' in fragments
    assert 'id="count-completed"' in fragments


def test_it_pushes_agent_metrics_to_the_agents_page(stack, seeded):
    client = login(stack.base_url, "bob", PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid']}"
    with connect(
        ws_url(stack, "/ws/agents/"), origin=stack.base_url, additional_headers={"Cookie": cookie}
    ) as socket:
        client.post(
            "/jobs/submit/",
            data={
                "title": "Metrics job",
                "description": "Count the metrics, please.",
                "priority": "5",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("-counts" in m for m in seen):
            seen.append(socket.recv(timeout=deadline - time.monotonic()))
    fragments = "\n".join(seen)
    assert 'hx-swap-oob="true"' in fragments
    assert "-counts" in fragments and "-load" in fragments
