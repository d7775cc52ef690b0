"""Private, loopback and link-local targets are refused by default, when an endpoint is
registered and again at each delivery (a name can resolve elsewhere by then)."""

import ipaddress
import socket

import pytest
from django.core.exceptions import ValidationError

from agents.models import Job, JobStatus
from webhooks import transport, triggers
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Outcome, validate_target
from webhooks.tasks import deliver

from .webhook_receiver import running_receiver

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.10",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert transport.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert transport.refusal(ipaddress.ip_address(address)) is None


@pytest.fixture
def dns(monkeypatch) -> dict[str, str]:
    """Names the test resolves itself; everything else as the system does."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://internal.example.com/hook",  # resolves to 10.0.0.5 below
    ],
)
def test_registration_refuses_private_targets_by_default(settings, dns, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns["internal.example.com"] = "10.0.0.5"
    with pytest.raises(ValidationError, match="private networks"):
        validate_target(url)


def test_registration_refuses_a_name_with_one_private_address_among_public_ones(
    settings, monkeypatch
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ],
    )
    with pytest.raises(ValidationError, match="127.0.0.1, a loopback address"):
        validate_target("https://mixed.example.com/hook")


def test_registration_refuses_credentials_and_other_schemes(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(ValidationError, match="credentials"):
        validate_target("https://user:pw@127.0.0.1/hook")
    with pytest.raises(ValidationError, match="http"):
        validate_target("ftp://127.0.0.1/hook")


def test_the_setting_allows_private_targets(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    validate_target("http://127.0.0.1:8080/hook")


@pytest.mark.django_db
def test_a_name_that_resolves_privately_at_delivery_is_refused_then(settings, dns):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with running_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        dns["hooks.example.com"] = "93.184.215.14"  # public when registered
        url = f"http://hooks.example.com:{port}/hooks/baton"
        validate_target(url)
        Endpoint.objects.create(url=url, events=["job.completed"])
        job = Job.objects.create(title="T", description="D", status=JobStatus.COMPLETED)
        [delivery_id] = triggers.create_deliveries("job", job.pk, JobStatus.COMPLETED, "k")
        dns["hooks.example.com"] = "127.0.0.1"  # and loopback by the time it is sent
        deliver.apply(args=(delivery_id, 1))
        delivery = Delivery.objects.get(pk=delivery_id)
        assert delivery.status == DeliveryStatus.REFUSED
        attempt = delivery.attempt_log.get()
        assert attempt.outcome == Outcome.REFUSED
        assert "127.0.0.1, a loopback address" in attempt.error
        assert receiver.received == []

        # Allowed, the same delivery reaches the address checked, named as the URL names it.
        settings.WEBHOOK_ALLOW_PRIVATE = True
        assert delivery.resend()
        deliver.apply(args=(delivery_id, 2))
        [request] = receiver.received
        assert request.headers["host"] == f"hooks.example.com:{port}"
