"""An MCP server's token variable goes only to the origins the deployer binds it to
(MCP_TOKEN_ORIGINS): refused at registration and edit (form, admin) and at every request,
and a server's URL changed drops the variable it had, whoever changes it."""

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from agents import mcp
from agents.models import MCPServer
from orchestrator_site.settings import envorigins

from .mcp_server import mcp_server

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-never-shown"
ELSEWHERE = "https://mcp.example.com"


@pytest.fixture(autouse=True)
def _setup(settings, monkeypatch):
    settings.MCP_ALLOW_PRIVATE = True  # the test's servers listen on 127.0.0.1
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # the example names, offline
        if host in ("mcp.example.com", "evil.example.net"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.MCP_TOKEN_ORIGINS = {"MCP_DEMO_TOKEN": [ELSEWHERE]}
    monkeypatch.setenv("MCP_DEMO_TOKEN", TOKEN)
    monkeypatch.setenv("MCP_OTHER_TOKEN", "other-secret")


def test_a_token_is_not_sent_to_an_origin_it_is_not_bound_to():
    with mcp_server(token=TOKEN) as running:
        server = MCPServer.objects.create(
            name="Re-pointed", slug="demo", url=running.url, auth_env="MCP_DEMO_TOKEN"
        )
        with pytest.raises(mcp.ServerError, match="MCP_TOKEN_ORIGINS") as refused:
            mcp.fetch_tools(server)
        with pytest.raises(mcp.ServerError, match="MCP_TOKEN_ORIGINS"):
            mcp.call_tool(server, "add", {"a": 1, "b": 2})
    assert running.authorizations == []  # not a request was made
    assert "may be sent only to https://mcp.example.com" in str(refused.value)
    assert TOKEN not in str(refused.value)


def test_a_variable_bound_to_nothing_is_sent_nowhere():
    with mcp_server(token="other-secret") as running:
        server = MCPServer.objects.create(
            name="Other", slug="other", url=running.url, auth_env="MCP_OTHER_TOKEN"
        )
        with pytest.raises(mcp.ServerError, match="may be sent nowhere"):
            mcp.fetch_tools(server)
    assert running.authorizations == []


def test_the_origin_listed_is_allowed_with_or_without_its_default_port(settings):
    with mcp_server(token=TOKEN) as running:
        port = running.url.split(":")[2].split("/")[0]
        settings.MCP_TOKEN_ORIGINS = {"MCP_DEMO_TOKEN": [ELSEWHERE, f"http://127.0.0.1:{port}"]}
        server = MCPServer.objects.create(
            name="Demo", slug="demo", url=running.url, auth_env="MCP_DEMO_TOKEN"
        )
        assert len(mcp.fetch_tools(server)) == 3
        assert running.authorizations == [f"Bearer {TOKEN}"] * len(running.authorizations)
    assert mcp.token_refusal("MCP_DEMO_TOKEN", "https://mcp.example.com:443/mcp") is None
    assert mcp.token_refusal("MCP_DEMO_TOKEN", "http://mcp.example.com/mcp") is not None
    assert mcp.token_refusal("MCP_DEMO_TOKEN", "https://mcp.example.com:8443/") is not None


def test_registering_with_a_variable_not_bound_to_the_url_is_refused(client, manager):
    form = {
        "name": "Demo",
        "slug": "demo",
        "url": "https://evil.example.net/mcp",
        "auth_env": "MCP_DEMO_TOKEN",
    }
    response = client.post(reverse("dash-mcp-create"), form)
    assert response.status_code == 400
    html = response.content.decode()
    assert "may be sent only to https://mcp.example.com" in html and TOKEN not in html
    assert not MCPServer.objects.exists()


def test_editing_a_servers_url_drops_its_token_variable(client, manager):
    server = MCPServer.objects.create(
        name="Demo", slug="demo", url=f"{ELSEWHERE}/mcp", auth_env="MCP_DEMO_TOKEN"
    )
    form = {"name": "Demo", "url": "https://evil.example.net/mcp", "auth_env": "MCP_DEMO_TOKEN"}
    response = client.post(reverse("dash-mcp-edit", args=["demo"]), form, follow=True)
    server.refresh_from_db()
    assert (server.url, server.auth_env) == ("https://evil.example.net/mcp", "")
    assert "the token in MCP_DEMO_TOKEN is not sent to it" in response.content.decode()


def test_naming_another_servers_variable_for_a_new_url_is_refused(client, manager):
    MCPServer.objects.create(name="Demo", slug="demo", url=f"{ELSEWHERE}/mcp")
    form = {"name": "Demo", "url": "https://evil.example.net/mcp", "auth_env": "MCP_OTHER_TOKEN"}
    response = client.post(reverse("dash-mcp-edit", args=["demo"]), form)
    assert response.status_code == 400
    assert "MCP_OTHER_TOKEN may be sent nowhere" in response.content.decode()
    assert MCPServer.objects.get().auth_env == ""


def test_a_url_changed_in_code_or_the_api_drops_the_variable_too():
    server = MCPServer.objects.create(
        name="Demo", slug="demo", url=f"{ELSEWHERE}/mcp", auth_env="MCP_DEMO_TOKEN"
    )
    server.name = "Renamed"
    server.save()
    assert MCPServer.objects.get().auth_env == "MCP_DEMO_TOKEN"  # same URL: kept
    server.url = "https://evil.example.net/mcp"
    server.save(update_fields=["url"])
    assert MCPServer.objects.get().auth_env == ""


def test_the_admin_drops_the_variable_when_the_url_changes(admin_client):
    server = MCPServer.objects.create(
        name="Demo", slug="demo", url=f"{ELSEWHERE}/mcp", auth_env="MCP_DEMO_TOKEN"
    )
    change = reverse("admin:agents_mcpserver_change", args=[server.pk])
    form = {
        "name": "Demo",
        "slug": "demo",
        "url": "https://evil.example.net/mcp",
        "auth_env": "MCP_DEMO_TOKEN",
        "enabled": "on",
    }
    response = admin_client.post(change, form, follow=True)
    assert response.status_code == 200
    server.refresh_from_db()
    assert (server.url, server.auth_env) == ("https://evil.example.net/mcp", "")
    assert TOKEN not in response.content.decode()


@pytest.mark.parametrize(
    "value",
    [
        "MCP_A=ftp://a.example",
        "SECRET_KEY=https://a.example",
        "MCP_A=https://a.example/path",
        "MCP_A",
        "MCP_A=https://a.example:99999",
    ],
)
def test_the_setting_is_parsed_strictly(monkeypatch, value):
    monkeypatch.setenv("MCP_TOKEN_ORIGINS", value)
    with pytest.raises(ImproperlyConfigured, match="MCP_TOKEN_ORIGINS"):
        envorigins("MCP_TOKEN_ORIGINS")


def test_the_setting_binds_each_variable_to_its_origins(monkeypatch):
    monkeypatch.setenv(
        "MCP_TOKEN_ORIGINS", "MCP_A=https://a.example,http://127.0.0.1:9000/; MCP_B=https://b"
    )
    assert envorigins("MCP_TOKEN_ORIGINS") == {
        "MCP_A": ["https://a.example", "http://127.0.0.1:9000"],
        "MCP_B": ["https://b"],
    }
