"""Outgoing HTTP (agents.outbound) as webhooks, http_get and MCP use it: addresses that carry
a private IPv4 address refused, a DNS answer that changes after the check never followed, no
redirect followed, at most a cap of an answer read, and a whole call held to its deadline.
Servers here are real, on 127.0.0.1; only the DNS answer (outside Baton) is stubbed."""

import ipaddress
import json
import socket
import threading
import tracemalloc

import pytest
from django.core.exceptions import ValidationError

from agents import mcp, outbound, state, tools
from agents.addresses import refusal
from agents.models import Job, MCPServer, SharedState
from webhooks import transport
from webhooks.models import validate_target

from .mcp_server import mcp_server
from .outbound_server import drip, redirect, serving, stream

PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::", "6to4 form of a loopback"),  # 127.0.0.1
        ("2002:a00:1::", "6to4 form of a private"),  # 10.0.0.1
        ("2002:a9fe:a9fe::", "6to4 form of a link-local"),  # 169.254.169.254
        ("2001:0:7f00:1::80ff:fffe", "Teredo form of a loopback"),  # server 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo form of a private"),  # client 10.0.0.1
        ("64:ff9b::7f00:1", "NAT64 form of a loopback"),
        ("64:ff9b::c0a8:101", "NAT64 form of a private"),  # 192.168.1.1
        ("::7f00:1", "IPv4-compatible form of a loopback"),
        ("::ffff:a00:1", "IPv4-mapped form of a private"),
        ("fec0::1", "site-local"),
    ],
)
def test_addresses_carrying_a_private_ipv4_are_refused(address, reason):
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["2002:808:808::", "64:ff9b::808:808"])
def test_the_same_forms_of_a_public_address_are_allowed(address):
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[2001:0:7f00:1::80ff:fffe]/hook",  # Teredo, server 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
    ],
)
def test_webhooks_refuse_6to4_teredo_and_nat64_targets(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError, match="form of a"):
        validate_target(url)
    with pytest.raises(transport.Refused, match="WEBHOOK_ALLOW_PRIVATE"):
        transport.post(url, "{}", {}, allow_private=False, timeout=1)


@pytest.fixture
def rebinding(monkeypatch):
    """A resolver whose answer for rebind.test is public at the first question and
    127.0.0.1 at every later one (a rebinding attacker's DNS server)."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host  # anyio asks in bytes
        if name != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(name)
        address = PUBLIC if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def ctx(db) -> tools.Context:
    job = Job.objects.create(title="J", description="d")
    SharedState.objects.create(job=job)
    state.write(job.pk, {"notes": 1}, author="orchestrator/plan")
    return tools.Context(job_id=job.pk, author="coder/s1", grants=tuple(tools.BUILT_IN))


def http_get(ctx: tools.Context, url: str) -> tools.Outcome:
    return tools.run("http_get", json.dumps({"url": url}), ctx)


def test_http_get_connects_to_the_address_it_checked_not_a_rebound_one(ctx, settings, rebinding):
    settings.TOOL_HTTP_ALLOWLIST = ["rebind.test"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = False
    settings.TOOL_HTTP_DEADLINE_S = 1
    with serving(stream(10)) as local:
        outcome = http_get(ctx, f"http://rebind.test:{local.port}/")
    assert local.hosts == []  # never reached, though the name now says 127.0.0.1
    assert outcome.result == "" and outcome.error
    assert rebinding == ["rebind.test"]  # asked once: the check's answer is the one used


def test_webhooks_connect_to_the_address_they_checked_not_a_rebound_one(rebinding):
    with serving(stream(10)) as local:
        with pytest.raises(transport.Unreachable):
            transport.post(
                f"http://rebind.test:{local.port}/hook", "{}", {}, allow_private=False, timeout=1
            )
    assert local.hosts == [] and rebinding == ["rebind.test"]


@pytest.mark.django_db
def test_mcp_connects_to_the_address_it_checked_not_a_rebound_one(settings, rebinding):
    settings.MCP_ALLOW_PRIVATE = False
    settings.MCP_TIMEOUT_S = 1
    with serving(stream(10)) as local:  # any request that reached it would be counted
        server = MCPServer.objects.create(
            name="Rebound", slug="rebound", url=f"http://rebind.test:{local.port}/mcp"
        )
        with pytest.raises(mcp.ServerError):
            mcp.call_tool(server, "add", {"a": 1, "b": 2})
    assert local.hosts == [] and rebinding == ["rebind.test"]


def test_a_connection_keeps_the_urls_host_header(settings):
    with serving(stream(5)) as local:
        answer = outbound.request(
            "GET",
            f"http://localhost:{local.port}/page",
            allow_private=True,
            setting="TEST",
            deadline_s=5,
            max_bytes=100,
        )
    assert (answer.status, answer.body) == (200, b"xxxxx")
    assert local.hosts == [f"localhost:{local.port}"]


def test_http_get_reads_no_more_of_a_large_answer_than_it_keeps(ctx, settings):
    settings.TOOL_HTTP_ALLOWLIST = ["127.0.0.1"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = True
    total = 50 * 1024 * 1024
    tracemalloc.start()
    try:
        with serving(stream(total)) as local:
            outcome = http_get(ctx, local.url)
            assert local.done.wait(10)  # the server saw the client go
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.error == ""
    assert outcome.result == "HTTP 200\n\n" + "x" * (tools.RESULT_CHARS - len("HTTP 200\n\n"))
    assert local.sent < total // 4  # it stopped reading; the rest was never sent
    assert peak < 8 * 1024 * 1024


def test_http_get_of_a_slow_drip_ends_at_its_deadline(ctx, settings):
    settings.TOOL_HTTP_ALLOWLIST = ["127.0.0.1"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = True
    settings.TOOL_HTTP_DEADLINE_S = 2
    with serving(drip(30, 0.5)) as local:
        outcome = http_get(ctx, local.url)
        assert local.done.wait(30)
    assert outcome.result == ""
    assert "No answer within 2 s (the deadline of the whole call)" in outcome.error
    assert local.sent < 30  # cut off before the drip ended: 15 s of it at 0.5 s a byte


def test_a_webhook_endpoint_dripping_its_headers_holds_a_delivery_only_to_the_deadline():
    with serving(drip(30, 0.5, in_headers=True)) as local:
        with pytest.raises(transport.Unreachable, match="No answer within 1 s"):
            transport.post(local.url, "{}", {}, allow_private=True, timeout=1)
        assert local.done.wait(30)
    assert local.sent < 30


def test_a_redirect_is_answered_not_followed(ctx, settings):
    settings.TOOL_HTTP_ALLOWLIST = ["127.0.0.1"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = True
    with serving(stream(3)) as target:
        with serving(redirect(target.url)) as local:
            outcome = http_get(ctx, local.url)
    assert outcome.result.startswith("HTTP 302")
    assert target.hosts == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:99999/", "Not a valid URL"),
        ("http://[::1/", "Not a valid URL"),
        ("http://user:pw@127.0.0.1/", "no credentials"),
        ("file:///etc/passwd", "http:// or https://"),
    ],
)
def test_a_bad_url_is_a_clear_refusal(url, expected):
    with pytest.raises(outbound.Refused, match=expected):
        outbound.request("GET", url, allow_private=True, setting="TEST", deadline_s=1, max_bytes=10)


@pytest.mark.django_db
def test_an_mcp_answer_past_the_cap_is_cut_with_a_clear_error(settings, monkeypatch):
    settings.MCP_ALLOW_PRIVATE = True
    monkeypatch.setattr(mcp, "ANSWER_BYTES", 300)  # less than its tool listing
    with mcp_server() as running:
        server = MCPServer.objects.create(name="Big", slug="big", url=running.url)
        with pytest.raises(mcp.ServerError, match="larger than 300 bytes"):
            mcp.fetch_tools(server)


@pytest.mark.django_db
def test_an_mcp_server_redirecting_is_not_followed(settings):
    settings.MCP_ALLOW_PRIVATE = True
    with serving(stream(3)) as target:
        with serving(redirect(target.url)) as local:
            server = MCPServer.objects.create(name="Moved", slug="moved", url=local.url)
            with pytest.raises(mcp.ServerError, match="HTTP 302 .* follows no redirect"):
                mcp.fetch_tools(server)
    assert local.hosts and target.hosts == []


def test_a_resolver_that_does_not_answer_holds_a_delivery_only_to_the_deadline(monkeypatch):
    answered = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "slow-dns.test":
            return real(host, port, *args, **kwargs)
        answered.wait(30)  # the resolver's own timeout, in effect
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        with pytest.raises(transport.Unreachable, match="did not resolve within 0.5 s"):
            transport.post("http://slow-dns.test/hook", "{}", {}, allow_private=False, timeout=0.5)
    finally:
        answered.set()
