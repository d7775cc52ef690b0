"""The one LLM client: an OpenAI-compatible chat completion, or the offline model.

Every failure is an LLMError that says whether retrying can help, so callers store the
error on their row and decide; nothing here retries or sleeps.
"""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import redis
from django.conf import settings

from agents import limiter, offline

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
        super().__init__(message)
        self.status = status
        self.body = body
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
) -> Completion:
    """Ask the model; latency_s is the call itself, not the wait for a limiter slot.

    `tools` (OpenAI function schemas) are offered when given; the answer may then carry
    `tool_calls`. `on_start` runs once a slot is held, just before the request.
    """
    try:
        with limiter.llm_slot():
            if on_start is not None:
                on_start()
            if is_offline():
                return _complete_offline(messages, tools)
            body = {
                "model": model,
                "messages": messages,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
            if tools:
                body["tools"] = tools
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


def _complete_offline(messages: list[dict], tools: list[dict] | None = None) -> Completion:
    started = time.monotonic()
    calls = offline.tool_calls(messages, tools or [])
    text = "" if calls else offline.respond(messages)
    return Completion(
        text=text,
        prompt_tokens=offline.estimate_tokens(offline.messages_text(messages)),
        completion_tokens=offline.estimate_tokens(text or json.dumps(calls)),
        latency_s=time.monotonic() - started,
        http_status=None,
        finish_reason="tool_calls" if calls else "stop",
        tool_calls=tuple(calls),
    )


def _complete_http(body: dict) -> Completion:
    key = settings.LLM_API_KEY
    timeout = float(settings.LLM_TIMEOUT_S)
    url = f"{settings.LLM_BASE_URL.rstrip('/')}/chat/completions"
    started = time.monotonic()
    try:
        status, headers, raw = _post(url, key, body, timeout)
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
    latency = time.monotonic() - started
    # Scrubbed before any path can quote it: error pages (even with a 200) echo headers.
    text = _scrub(raw.decode("utf-8", errors="replace"), key)

    if status != 200:
        trimmed = text[:BODY_CHARS]
        raise LLMError(
            f"LLM provider answered HTTP {status}: {trimmed[:300]}",
            status=status,
            body=trimmed,
            permanent=400 <= status < 500 and status not in (408, 409, 429),
            retry_after=parse_retry_after(headers.get("retry-after")),
            latency_s=latency,
        )
    return _parse_completion(text, body["messages"], latency)


def _post(url: str, key: str, body: dict, timeout: float) -> tuple[int, httpx.Headers, bytes]:
    # httpx timeouts are per phase; the deadline check while reading the body keeps a
    # slowly dripping response near the total LLM_TIMEOUT_S as well.
    deadline = time.monotonic() + timeout
    request_headers = {"Authorization": f"Bearer {key}"}
    with _client(timeout).stream("POST", url, json=body, headers=request_headers) as response:
        chunks = []
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("total timeout exceeded while reading the response")
        return response.status_code, response.headers, b"".join(chunks)


def _parse_completion(text: str, messages: list[dict], latency: float) -> Completion:
    try:
        data = json.loads(text)
        choice = data["choices"][0]
        content = offline.content_text(choice["message"].get("content"))
        tool_calls = _tool_calls(choice["message"].get("tool_calls"))
        usage = data.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(
            f"LLM provider answered HTTP 200 with no usable completion: {text[:300]}",
            status=200,
            body=text[:BODY_CHARS],
            latency_s=latency,
        ) from None
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    return Completion(
        text=content,
        prompt_tokens=prompt_tokens
        if isinstance(prompt_tokens, int)
        else offline.estimate_tokens(offline.messages_text(messages)),
        completion_tokens=completion_tokens
        if isinstance(completion_tokens, int)
        else offline.estimate_tokens(content),
        latency_s=latency,
        http_status=200,
        # Some providers leave it null; the text is all there is either way.
        finish_reason=choice.get("finish_reason") or ("tool_calls" if tool_calls else "stop"),
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
