"""Real WebSocket connections to the running stack: pushes arrive, anonymous users are refused."""

import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .cast import PASSWORD
from .stack import login, submit

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def ws_url(stack, path: str) -> str:
    return stack.base_url.replace("http://", "ws://") + path


def test_it_refuses_an_anonymous_websocket(stack):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(stack, "/ws/board/"), origin=stack.base_url, open_timeout=5)
    assert refused.value.response.status_code == 403


def test_it_refuses_a_socket_to_an_unknown_path_cleanly(stack, seeded):
    client = login(stack.base_url, "bob", PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid']}"
    with pytest.raises(InvalidStatus) as refused:
        connect(
            ws_url(stack, "/ws/no-such-page/"),
            origin=stack.base_url,
            additional_headers={"Cookie": cookie},
            open_timeout=5,
        )
    assert refused.value.response.status_code == 403  # not a 500 from the router


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


def fragments_while_submitting(stack, path: str, title: str, until: str) -> str:
    """Open a logged-in socket on `path`, submit a job, collect fragments until `until`."""
    client = login(stack.base_url, "bob", PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid']}"
    seen: list[str] = []
    with connect(
        ws_url(stack, path), origin=stack.base_url, additional_headers={"Cookie": cookie}
    ) as socket:
        submit(client, title, "Summarise the news of the day.")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(until in m for m in seen):
            seen.append(socket.recv(timeout=deadline - time.monotonic()))
    return "\n".join(seen)


def test_it_pushes_status_changes_to_the_board(stack, seeded):
    completed = 'hx-swap-oob="afterbegin:#cards-completed"'
    fragments = fragments_while_submitting(stack, "/ws/board/", "Pushed job", until=completed)
    assert "Pushed job" in fragments
    # The card entered the board and moved, live, to the completed column. Changes are
    # coalesced (the newest state wins), so it may enter straight in a later column.
    first_column = fragments.index('hx-swap-oob="afterbegin:#cards-')
    assert first_column < fragments.index(completed)
    assert completed in fragments
    assert 'id="count-completed"' in fragments


def test_it_pushes_agent_metrics_to_the_agents_page(stack, seeded):
    fragments = fragments_while_submitting(stack, "/ws/agents/", "Metrics job", until="-counts")
    assert 'hx-swap-oob="true"' in fragments
    assert "-counts" in fragments and "-load" in fragments
