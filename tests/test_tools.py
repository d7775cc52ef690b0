"""The built-in tools: shared state read and written through its versions, http_get held to
its allowlist and to public addresses, and every failure an error result, never a crash."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents import state, tools
from agents.models import Job, SharedState, SharedStateVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def ctx() -> tools.Context:
    job = Job.objects.create(title="J", description="d")
    SharedState.objects.create(job=job)
    state.write(job.pk, {"notes": {"a": 1}}, author="orchestrator/plan")
    return tools.Context(job_id=job.pk, author="coder/s1", grants=tuple(tools.BUILT_IN))


def test_the_schemas_are_openai_tools():
    [schema] = tools.schemas(["write_state", "no-such-tool"])
    assert schema["type"] == "function"
    assert schema["function"]["name"] == "write_state"
    assert schema["function"]["parameters"]["required"] == ["key", "value"]


def test_read_state_reads_the_whole_state_or_one_key(ctx):
    whole = tools.run("read_state", "{}", ctx)
    one = tools.run("read_state", json.dumps({"key": "notes"}), ctx)
    missing = tools.run("read_state", json.dumps({"key": "nope"}), ctx)
    assert json.loads(whole.result) == {"notes": {"a": 1}}
    assert json.loads(one.result) == {"a": 1}
    assert missing.result == "" and "no key 'nope'" in missing.error


def test_write_state_is_a_new_version_with_the_agent_as_author(ctx):
    outcome = tools.run("write_state", json.dumps({"key": "draft", "value": [1, 2]}), ctx)
    assert outcome.error == ""
    assert "version 2" in outcome.result
    newest = SharedStateVersion.objects.filter(state__job_id=ctx.job_id).order_by("-version")[0]
    assert (newest.version, newest.author) == (2, "coder/s1")
    assert state.version_data(ctx.job_id, 2)["draft"] == [1, 2]


def test_write_state_refuses_the_keys_baton_writes(ctx):
    outcome = tools.run("write_state", json.dumps({"key": "results", "value": {}}), ctx)
    assert "written by Baton itself" in outcome.error
    assert SharedState.objects.get(job_id=ctx.job_id).version == 1


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("launch_rockets", "{}", "There is no tool"),
        ("read_state", "{not json", "not valid JSON"),
        ("read_state", "[1]", "must be a JSON object"),
        ("write_state", json.dumps({"value": 1}), "Give the key"),
        ("http_get", json.dumps({"url": "ftp://example.org/"}), "http:// or https://"),
        ("http_get", json.dumps({"url": "https://example.org/"}), "not among the hosts"),
    ],
)
def test_a_failing_tool_gives_an_error_result_not_a_crash(ctx, name, arguments, expected):
    outcome = tools.run(name, arguments, ctx)
    assert outcome.result == ""
    assert expected in outcome.error


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the allowed host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def local_page():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page"
    server.shutdown()
    server.server_close()


def test_http_get_refuses_a_private_address_even_on_the_allowlist(ctx, settings, local_page):
    settings.TOOL_HTTP_ALLOWLIST = ["127.0.0.1"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = False
    outcome = tools.run("http_get", json.dumps({"url": local_page}), ctx)
    assert "loopback address: refused" in outcome.error


def test_http_get_fetches_from_an_allowed_host(ctx, settings, local_page):
    settings.TOOL_HTTP_ALLOWLIST = ["127.0.0.1"]
    settings.TOOL_HTTP_ALLOW_PRIVATE = True
    outcome = tools.run("http_get", json.dumps({"url": local_page}), ctx)
    assert outcome.error == ""
    assert outcome.result == "HTTP 200\n\nhello from the allowed host"
    assert outcome.latency_s > 0
