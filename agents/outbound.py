"""Every HTTP request Baton makes to a host someone else runs: webhook deliveries
(webhooks.transport), the http_get tool (agents.tools) and MCP servers (agents.mcp).

A URL is resolved once and every address checked (agents.addresses) before a byte is sent.
The client's network backend is then pinned to the checked addresses: whatever host the
client asks to connect to, it gets a checked address or a refusal, never a second DNS
answer (a name rebound to 127.0.0.1 between check and connection goes nowhere), while the
URL, its Host header and its TLS server name stay as written. Redirects are never followed.
An answer is read up to a byte cap and no further, and a whole call, connection to last
byte, has a deadline that every socket operation is held to: a server dripping a byte at a
time cannot hold a thread past it.

The sync client is httpx; the async one (the MCP SDK's) httpx2, a fork with the same
backend interface (httpcore2), imported only by the calls that use it.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

import httpcore
import httpx

from .addresses import Address, lookup, refusal

USER_AGENT = "Baton/1"
CHUNK_BYTES = 64 * 1024


class Refused(Exception):
    """Not to be called (not an http(s) URL, credentials in it, a private address): another
    try would be refused the same way."""


class Unreachable(Exception):
    """No complete answer (DNS, connection, the deadline): another try may do better."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str  # as the client names it: lower case, IDNA, no brackets
    port: int
    addresses: tuple[Address, ...]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes  # at most the cap
    latency_s: float  # to the status line
    cut: str  # why the body ended before the server's end of it ("" when it did not)

    def text(self) -> str:
        """The body decoded by its declared charset (UTF-8 when none or unknown)."""
        declared = Message()
        declared["Content-Type"] = self.headers.get("Content-Type", "")
        charset = declared.get_content_charset() or "utf-8"
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def host_of(url: str) -> str:
    """The host a request to this URL connects to, as `check` and the connection read it
    (one parser: an allowlist held against another one's reading could be fooled)."""
    try:
        host = httpx.URL(url).raw_host.decode("ascii").lower()
    except (ValueError, TypeError, httpx.InvalidURL) as exc:
        raise Refused(f"Not a valid URL: {exc}") from None
    if not host:
        raise Refused("Give an http:// or https:// URL.")
    return host


def check(
    url: str,
    *,
    allow_private: bool,
    setting: str,
    credentials_hint: str = "",
    within: float | None = None,
) -> Target:
    """The URL resolved (within `within` seconds, if given), every address checked; Refused
    or Unreachable saying why not. `setting` names what allows private addresses."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except (ValueError, TypeError, httpx.InvalidURL) as exc:
        raise Refused(f"Not a valid URL: {exc}") from None
    if not 0 < port < 65536:
        raise Refused(f"Not a valid URL: no port {port}.")
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise Refused("Give an http:// or https:// URL.")
    if parsed.userinfo:
        raise Refused(f"Put no credentials in the URL{credentials_hint}.")
    host = host_of(url)
    try:
        addresses = _lookup(host, port, within)
    except LookupError as exc:
        raise Unreachable(str(exc)) from None
    if not allow_private:
        for address in addresses:
            if reason := refusal(address):
                raise Refused(
                    f"{host} resolves to {address}, a {reason} address: refused (Baton does "
                    f"not call into private networks; {setting})."
                )
    return Target(url, host, port, tuple(addresses))


def _lookup(host: str, port: int, within: float | None) -> list[Address]:
    """`lookup`, given up after `within` seconds: the system resolver cannot be interrupted,
    so it runs on a thread of its own, left to end by itself when it is too slow."""
    try:
        return [ipaddress.ip_address(host)]  # a literal: nothing to ask
    except ValueError:
        pass
    if within is None:
        return lookup(host, port)
    answer: list = []

    def resolve() -> None:
        try:
            answer.append(lookup(host, port))
        except LookupError as exc:
            answer.append(exc)

    thread = threading.Thread(target=resolve, name="outbound-dns", daemon=True)
    thread.start()
    thread.join(max(within, 0.0))
    if not answer:
        raise LookupError(f"{host} did not resolve within {within:g} s.")
    if isinstance(answer[0], LookupError):
        raise answer[0]
    return answer[0]


class Budget:
    """A call's deadline and byte cap, shared by all its connections; `cut` says which ran
    out (a client only sees the timeout or read error it caused)."""

    def __init__(self, deadline_s: float, max_bytes: int | None, errors: Any) -> None:
        self.deadline_s, self.max_bytes, self.errors = deadline_s, max_bytes, errors
        self.ends = time.monotonic() + deadline_s
        self.read = 0
        self.cut = ""

    def over(self) -> str:
        self.cut = f"No answer within {self.deadline_s:g} s (the deadline of the whole call)."
        return self.cut

    def timeout(self, timeout: float | None, error: str) -> float:
        """The timeout of one socket operation: its own, and never past the deadline."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise getattr(self.errors, error)(self.over())
        return left if timeout is None else min(timeout, left)

    def count(self, data: bytes) -> bytes:
        self.read += len(data)
        if self.max_bytes is not None and self.read > self.max_bytes:
            self.cut = f"The answer is larger than {self.max_bytes:,} bytes."
            raise self.errors.ReadError(self.cut)
        return data


def _unpinned(target: Target, host: str, port: int, errors: Any) -> Exception | None:
    if host.strip("[]").lower() == target.host and port == target.port:
        return None
    return errors.ConnectError(f"{host}:{port} is not the address checked for {target.url}.")


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: Any, budget: Budget) -> None:
        self.inner, self.budget = inner, budget

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout = self.budget.timeout(timeout, "ReadTimeout")
        return self.budget.count(self.inner.read(max_bytes, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.budget.timeout(timeout, "WriteTimeout"))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> _Stream:
        timeout = self.budget.timeout(timeout, "ConnectTimeout")
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, timeout), self.budget)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's backend, connecting only to the target's checked addresses, in order."""

    def __init__(self, target: Target, budget: Budget) -> None:
        self.target, self.budget, self.inner = target, budget, httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if refused := _unpinned(self.target, host, port, httpcore):
            raise refused
        error: Exception = httpcore.ConnectError("no address")
        for address in self.target.addresses:
            limit = self.budget.timeout(timeout, "ConnectTimeout")
            try:
                stream = self.inner.connect_tcp(str(address), port, limit, None, socket_options)
            except httpcore.ConnectError as exc:
                error = exc  # refused or unreachable: the name's next address
                continue
            return _Stream(stream, self.budget)
        raise error

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("Baton calls out over TCP only.")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def request(
    method: str,
    url: str,
    *,
    allow_private: bool,
    setting: str,
    deadline_s: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    credentials_hint: str = "",
) -> Answer:
    """One request to a checked address of the URL, within `deadline_s` from start to its
    last byte read; at most `max_bytes` of the (decoded) body are read, the rest never.
    Refused or Unreachable, with words for a person or a model, when there is no answer."""
    budget = Budget(deadline_s, None, httpcore)
    target = check(
        url,
        allow_private=allow_private,
        setting=setting,
        credentials_hint=credentials_hint,
        within=deadline_s,
    )
    transport = httpx.HTTPTransport(verify=_tls(httpx))
    # httpx takes no network backend: its pool is built again, with ours (public httpcore API).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_tls(httpx), network_backend=PinnedBackend(target, budget)
    )
    sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", **(headers or {})}
    started = time.monotonic()
    try:
        with httpx.Client(
            transport=transport, timeout=deadline_s, follow_redirects=False, trust_env=False
        ) as client:
            with client.stream(method, url, headers=sent, content=content) as response:
                latency = time.monotonic() - started
                body, cut = _body(response, max_bytes, budget)
                return Answer(response.status_code, response.headers, body, latency, cut)
    except httpx.TimeoutException:
        # A socket's own timeout is the deadline too: no operation may outlast it.
        raise Unreachable(budget.over()) from None
    except httpx.TransportError as exc:
        raise Unreachable(budget.cut or f"Could not connect to {target.host}: {exc}") from None


@functools.cache
def _tls(library: Any) -> ssl.SSLContext:
    """One TLS context per client library, made once: loading the CA bundle costs tens of
    milliseconds of CPU, and a context is safe to share between threads."""
    return library.create_ssl_context(trust_env=False)


def _body(response: httpx.Response, max_bytes: int, budget: Budget) -> tuple[bytes, str]:
    """The body up to `max_bytes`, read a chunk at a time (decoded the same way, never more
    than the room left), and why it ended early ("" at its end or at the cap)."""
    decode = _decoder(response.headers.get("Content-Encoding", ""))
    body = bytearray()
    try:
        for chunk in response.iter_raw(CHUNK_BYTES):
            body += decode(chunk, max_bytes - len(body))
            if len(body) >= max_bytes:
                break
    except httpx.TimeoutException:
        return bytes(body), budget.over()
    except httpx.HTTPError as exc:
        return bytes(body), budget.cut or f"The answer broke off: {exc}"
    return bytes(body[:max_bytes]), ""


def _decoder(encoding: str) -> Callable[[bytes, int], bytes]:
    """gzip and deflate decoded with a bound on what one chunk may inflate to (a small
    compressed body can stand for gigabytes); anything else is kept as sent."""
    if encoding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        return lambda chunk, room: chunk
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a zlib or a gzip header

    def decode(chunk: bytes, room: int) -> bytes:
        try:
            return inflater.decompress(chunk, max(room, 1))
        except zlib.error as exc:
            raise httpx.DecodingError(f"The {encoding} body does not decode: {exc}") from None

    return decode


def async_client(
    target: Target, *, deadline_s: float, max_bytes: int, **kwargs: Any
) -> tuple[Any, Budget]:
    """An httpx2.AsyncClient (imported with the MCP SDK, which uses it) whose connections go
    to the target's checked addresses only, all of them within one deadline and one byte
    cap, and its Budget (which says what ran out). It follows no redirect: a 3xx fails the
    request (the SDK would follow one on the same origin itself)."""
    import httpcore2
    import httpx2

    budget = Budget(deadline_s, max_bytes, httpcore2)
    transport = httpx2.AsyncHTTPTransport(verify=_tls(httpx2))
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=_tls(httpx2), network_backend=_async_backend(target, budget)
    )

    async def no_redirect(response: Any) -> None:
        if response.is_redirect:
            budget.cut = (
                f"{target.host} answered HTTP {response.status_code} to "
                f"{response.headers.get('Location', 'elsewhere')}: Baton follows no redirect."
            )
            raise httpx2.RemoteProtocolError(budget.cut, request=response.request)

    hooks = kwargs.pop("event_hooks", {})
    hooks = {**hooks, "response": [no_redirect, *hooks.get("response", [])]}
    client = httpx2.AsyncClient(
        transport=transport,
        timeout=deadline_s,
        follow_redirects=False,
        trust_env=False,
        event_hooks=hooks,
        **kwargs,
    )
    return client, budget


def _async_backend(target: Target, budget: Budget) -> Any:
    import httpcore2

    class Stream(httpcore2.AsyncNetworkStream):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            timeout = budget.timeout(timeout, "ReadTimeout")
            return budget.count(await self.inner.read(max_bytes, timeout))

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            await self.inner.write(buffer, budget.timeout(timeout, "WriteTimeout"))

        async def aclose(self) -> None:
            await self.inner.aclose()

        async def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> Stream:
            timeout = budget.timeout(timeout, "ConnectTimeout")
            return Stream(await self.inner.start_tls(ssl_context, server_hostname, timeout))

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class Backend(httpcore2.AsyncNetworkBackend):
        inner = httpcore2.AnyIOBackend()

        async def connect_tcp(
            self, host, port, timeout=None, local_address=None, socket_options=None
        ):
            if refused := _unpinned(target, host, port, httpcore2):
                raise refused
            error: Exception = httpcore2.ConnectError("no address")
            for address in target.addresses:
                limit = budget.timeout(timeout, "ConnectTimeout")
                try:
                    stream = await self.inner.connect_tcp(
                        str(address), port, limit, None, socket_options
                    )
                except httpcore2.ConnectError as exc:
                    error = exc
                    continue
                return Stream(stream)
            raise error

        async def connect_unix_socket(self, path, timeout=None, socket_options=None):
            raise httpcore2.ConnectError("Baton calls out over TCP only.")

        async def sleep(self, seconds: float) -> None:
            await self.inner.sleep(seconds)

    return Backend()
