"""The one LLM client: an OpenAI-compatible chat completion, or the offline model.

Every failure is an LLMError that says whether retrying can help, so callers store the
error on their row and decide; nothing here retries or sleeps.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import redis
from django.conf import settings

from agents import limiter, offline, tokens
from agents.text import clean

BODY_CHARS = 2000
# Enough pooled connections for hundreds of calls in flight across a threads-pool worker.
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    http_status: int | None  # None for the offline model
    finish_reason: str
    # What the model asked to run, as the OpenAI protocol's `tool_calls`:
    # [{"id", "type": "function", "function": {"name", "arguments"}}]
    tool_calls: tuple[dict, ...] = ()


class LLMError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        permanent: bool = False,
        retry_after: float | None = None,
        latency_s: float = 0.0,
    ) -> None:
        # Quoted into rows (calls, subtasks, jobs): what no database stores is left out.
        super().__init__(clean(message))
        self.status = status
        self.body = clean(body)
        self.permanent = permanent
        self.retry_after = retry_after
        self.latency_s = latency_s

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


def is_offline() -> bool:
    return not settings.LLM_API_KEY


def complete(
    *,
    model: str,
    messages: list[dict],
    temperature: float = 0.7,
    max_tokens: int = 2048,
    tools: list[dict] | None = None,
    on_start: Callable[[], None] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """Ask the model; latency_s is the call itself, not the wait for a limiter slot.

    `tools` (OpenAI function schemas) are offered when given; the answer may then carry
    `tool_calls`. `on_start` runs once a slot is held, just before the request. `on_text`,
    when given, is called with each piece of the answer's text as it arrives (a streamed
    call, where LLM_STREAM allows and the provider streams); the Completion returned is the
    same either way.
    """
    try:
        with limiter.llm_slot():
            if on_start is not None:
                on_start()
            if is_offline():
                return _complete_offline(messages, tools, on_text)
            body = {
                "model": model,
                "messages": messages,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
            if tools:
                body["tools"] = tools
            if on_text is not None and settings.LLM_STREAM:
                return _complete_streamed(body, on_text)
            return _complete_http(body)
    except redis.RedisError as exc:
        raise LLMError(f"LLM concurrency limiter unavailable: {exc}") from exc


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _complete_offline(
    messages: list[dict],
    tools: list[dict] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    started = time.monotonic()
    calls = offline.tool_calls(messages, tools or [])
    text = "" if calls else offline.respond(messages)
    if on_text is not None and settings.LLM_STREAM:
        for piece in offline.pieces(text):
            on_text(piece)
    return Completion(
        text=text,
        prompt_tokens=tokens.estimate_tokens(tokens.messages_text(messages)),
        completion_tokens=tokens.estimate_tokens(text or json.dumps(calls)),
        latency_s=time.monotonic() - started,
        http_status=None,
        finish_reason="tool_calls" if calls else "stop",
        tool_calls=tuple(calls),
    )


def _complete_http(body: dict) -> Completion:
    key = settings.LLM_API_KEY
    timeout = float(settings.LLM_TIMEOUT_S)
    started = time.monotonic()
    with _transport_errors(key, started):
        status, headers, raw = _post(_url(), key, body, timeout)
    latency = time.monotonic() - started
    # Scrubbed before any path can quote it: error pages (even with a 200) echo headers.
    text = _scrub(raw.decode("utf-8", errors="replace"), key)
    if status != 200:
        raise _http_error(status, headers, text, latency)
    return _parse_completion(text, body["messages"], latency)


def _complete_streamed(body: dict, on_text: Callable[[str], None]) -> Completion:
    """The call with `stream: true`: `on_text` gets the text as it arrives; the Completion
    is the one the plain call would give. A provider that refuses to stream (a 400 about
    it) is asked again plainly, and one that answers a plain completion is taken at its
    word; either way this process asks it plainly from then on (`_plain_only`), and the
    text goes to `on_text` in one piece."""
    key = settings.LLM_API_KEY
    base_url = settings.LLM_BASE_URL
    if base_url in _plain_only:
        return _told(_complete_http(body), on_text)
    timeout = float(settings.LLM_TIMEOUT_S)
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.monotonic()
    with _transport_errors(key, started):
        try:
            status, headers, raw, stream = _post_stream(_url(), key, streamed, timeout, on_text)
        except _BrokenStream as exc:
            body_text = _scrub(exc.body, key)[:BODY_CHARS]
            raise LLMError(
                f"LLM stream broke off: {exc}: {body_text[:300]}",
                status=200,
                body=body_text,
                latency_s=time.monotonic() - started,
            ) from None
    latency = time.monotonic() - started
    if stream is not None:
        return stream.completion(body["messages"], latency, key)
    text = _scrub(raw.decode("utf-8", errors="replace"), key)
    if status == 400 and _REFUSED_STREAM.search(text):
        _plain_only.add(base_url)
        completion = _complete_http(body)
    elif status != 200:
        raise _http_error(status, headers, text, latency)
    else:
        completion = _parse_completion(text, body["messages"], latency)
        _plain_only.add(base_url)
    return _told(completion, on_text)


def _told(completion: Completion, on_text: Callable[[str], None]) -> Completion:
    if completion.text:
        on_text(completion.text)
    return completion


# A 400 that names `stream` or `stream_options` (not "upstream"): streaming was refused.
_REFUSED_STREAM = re.compile(r"\bstream", re.IGNORECASE)
# Provider base URLs that do not stream (they refused, or answered plainly): asked plainly
# from then on by this process, with no refused attempt before each call.
_plain_only: set[str] = set()


def _url() -> str:
    return f"{settings.LLM_BASE_URL.rstrip('/')}/chat/completions"


@contextmanager
def _transport_errors(key: str, started: float) -> Iterator[None]:
    """httpx's failures as retryable LLMErrors, the key scrubbed from their text."""
    try:
        yield
    except httpx.TimeoutException as exc:
        elapsed = time.monotonic() - started
        raise LLMError(
            f"LLM request timed out after {elapsed:.1f}s ({type(exc).__name__})",
            latency_s=elapsed,
        ) from None
    except httpx.HTTPError as exc:
        elapsed = time.monotonic() - started
        raise LLMError(
            f"LLM request failed: {type(exc).__name__}: {_scrub(str(exc), key)}",
            latency_s=elapsed,
        ) from None


def _http_error(status: int, headers: httpx.Headers, text: str, latency: float) -> LLMError:
    trimmed = text[:BODY_CHARS]
    return LLMError(
        f"LLM provider answered HTTP {status}: {trimmed[:300]}",
        status=status,
        body=trimmed,
        permanent=400 <= status < 500 and status not in (408, 409, 429),
        retry_after=parse_retry_after(headers.get("retry-after")),
        latency_s=latency,
    )


def _post(url: str, key: str, body: dict, timeout: float) -> tuple[int, httpx.Headers, bytes]:
    # httpx timeouts are per phase; the deadline check while reading the body keeps a
    # slowly dripping response near the total LLM_TIMEOUT_S as well.
    deadline = time.monotonic() + timeout
    request_headers = {"Authorization": f"Bearer {key}"}
    with _client(timeout).stream("POST", url, json=body, headers=request_headers) as response:
        return response.status_code, response.headers, _read(response, deadline)


def _read(response: httpx.Response, deadline: float) -> bytes:
    chunks = []
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("total timeout exceeded while reading the response")
    return b"".join(chunks)


def _post_stream(
    url: str, key: str, body: dict, timeout: float, on_text: Callable[[str], None]
) -> tuple[int, httpx.Headers, bytes, _Stream | None]:
    """POST a streamed call: its events read as they come (under the same total deadline
    as `_post`), or, for an answer that is no event stream, its bytes."""
    deadline = time.monotonic() + timeout
    request_headers = {"Authorization": f"Bearer {key}"}
    with _client(timeout).stream("POST", url, json=body, headers=request_headers) as response:
        kind = response.headers.get("content-type", "")
        if response.status_code != 200 or not kind.startswith("text/event-stream"):
            return response.status_code, response.headers, _read(response, deadline), None
        stream = _Stream()
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("total timeout exceeded while reading the stream")
            if stream.feed(line, on_text):
                break
        if not stream.ended:
            raise _BrokenStream("the stream ended before the answer did", "")
        return 200, response.headers, b"", stream


class _BrokenStream(Exception):
    def __init__(self, message: str, body: str) -> None:
        super().__init__(message)
        self.body = body


class _Stream:
    """A streamed answer put together from its server-sent events, in the OpenAI format:
    content deltas, tool_calls deltas keyed by index (arguments in pieces), the
    finish_reason, and a last chunk with the usage (stream_options.include_usage)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish_reason: str | None = None
        self.usage: dict = {}
        self.done = False

    @property
    def ended(self) -> bool:
        """[DONE] came, or at least the finish_reason (some providers send no [DONE])."""
        return self.done or self.finish_reason is not None

    def feed(self, line: str, on_text: Callable[[str], None]) -> bool:
        """Take one line of the stream; True at its end ([DONE])."""
        if not line.startswith("data:"):
            return False  # blank lines between events, comments, event names
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return True
        try:
            chunk = json.loads(data)
            if "error" in chunk:  # a provider's failure after the 200
                raise _BrokenStream("the provider sent an error", data)
            if isinstance(chunk.get("usage"), dict):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) == 0:
                    self._delta(choice, on_text)
        except (ValueError, TypeError, AttributeError):
            raise _BrokenStream("the stream carried a chunk that is no completion", data) from None
        return False

    def _delta(self, choice: dict, on_text: Callable[[str], None]) -> None:
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text.append(content)
            on_text(content)
        for item in delta.get("tool_calls") or []:
            call = self.calls.setdefault(
                item.get("index", len(self.calls)), {"id": "", "name": "", "arguments": ""}
            )
            call["id"] = item.get("id") or call["id"]
            function = item.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def completion(self, messages: list[dict], latency: float, key: str) -> Completion:
        raw_calls = [
            {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"] or "{}"}}
            for _, c in sorted(self.calls.items())
        ]
        return _completion(
            _scrub("".join(self.text), key),  # as the plain call's answer is
            _tool_calls(raw_calls),
            self.usage,
            self.finish_reason,
            messages,
            latency,
        )


def _parse_completion(text: str, messages: list[dict], latency: float) -> Completion:
    try:
        data = json.loads(text)
        choice = data["choices"][0]
        content = tokens.content_text(choice["message"].get("content"))
        tool_calls = _tool_calls(choice["message"].get("tool_calls"))
        usage = data.get("usage") or {}
        finish_reason = choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(
            f"LLM provider answered HTTP 200 with no usable completion: {text[:300]}",
            status=200,
            body=text[:BODY_CHARS],
            latency_s=latency,
        ) from None
    return _completion(content, tool_calls, usage, finish_reason, messages, latency)


def _completion(
    content: str,
    tool_calls: tuple[dict, ...],
    usage: dict,
    finish_reason: str | None,
    messages: list[dict],
    latency: float,
) -> Completion:
    """The answer, plain or streamed: the provider's usage, or an estimate without it."""
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    return Completion(
        text=content,
        prompt_tokens=prompt_tokens
        if isinstance(prompt_tokens, int)
        else tokens.estimate_tokens(tokens.messages_text(messages)),
        completion_tokens=completion_tokens
        if isinstance(completion_tokens, int)
        else tokens.estimate_tokens(content),
        latency_s=latency,
        http_status=200,
        # Some providers leave it null; the text is all there is either way.
        finish_reason=finish_reason or ("tool_calls" if tool_calls else "stop"),
        tool_calls=tool_calls,
    )


def _tool_calls(raw: object) -> tuple[dict, ...]:
    """The function calls of an answer, in the protocol's shape (anything else dropped)."""
    calls = []
    for item in raw if isinstance(raw, list) else []:
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            {
                "id": str(item.get("id") or f"call_{len(calls)}"),
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return tuple(calls)


def _scrub(text: str, key: str) -> str:
    """Providers echo a rejected key in their error bodies; never pass it on."""
    return text.replace(key, "[redacted]") if key else text


_client_lock = threading.Lock()
_clients: dict[float, httpx.Client] = {}


def _client(timeout: float) -> httpx.Client:
    """One pooled, thread-safe client per process (per timeout, for override_settings).

    It holds no base URL and no key (the key goes on each request), so changed settings
    need no rebuild.
    """
    with _client_lock:
        client = _clients.get(timeout)
        if client is None:
            client = _clients[timeout] = httpx.Client(
                timeout=httpx.Timeout(timeout), limits=_LIMITS
            )
        return client
