"""Baton's JSON API over httpx: each call returns the decoded body or raises `ApiError`,
which carries the exit code that says what went wrong."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version

import httpx
from httpx_sse import EventSource, connect_sse

OK, JOB_FAILED, USAGE, AUTH, NOT_FOUND, CONFLICT, SERVER = range(7)
EXIT_CODES = {401: AUTH, 403: AUTH, 404: NOT_FOUND, 409: CONFLICT, 422: USAGE}
TERMINAL = ("completed", "failed", "cancelled")
# A stream sends a keep-alive every SSE_KEEPALIVE_S (15 s by default): a longer silence
# means the connection is gone.
STREAM_READ_TIMEOUT_S = 60.0


class ApiError(Exception):
    """A refusal or a failure, printed as `error: <title>: <detail>`."""

    def __init__(self, exit_code: int, title: str, detail: str = "", errors: list[str] = ()):
        super().__init__(title)
        self.exit_code = exit_code
        self.title = title
        self.detail = detail
        self.errors = list(errors)

    def __str__(self) -> str:
        return f"{self.title}: {self.detail}" if self.detail else self.title


def problem(response: httpx.Response) -> ApiError:
    """An RFC 9457 problem (or any other error answer) as an ApiError."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ApiError(EXIT_CODES.get(status, SERVER), f"{status} {_phrase(status)}")
    detail = str(body.get("detail") or "")
    if status == 429 and "Retry-After" in response.headers:
        detail += f" (retry after {response.headers['Retry-After']} s)"
    errors = [_field_error(e) for e in body.get("errors") or [] if isinstance(e, dict)]
    title = str(body.get("title") or _phrase(status))
    return ApiError(EXIT_CODES.get(status, SERVER), title, detail, errors)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field_error(error: dict) -> str:
    where = error.get("pointer", "").removeprefix("#/").replace("/", ".") or error.get(
        "parameter", ""
    )
    return f"{where}: {error.get('detail', '')}" if where else str(error.get("detail", ""))


def _user_agent() -> str:
    try:
        return f"baton-cli/{version('baton')}"
    except PackageNotFoundError:
        return "baton-cli"


class Api:
    """One server and one token. `transport` lets tests answer in process."""

    def __init__(
        self,
        url: str,
        token: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = httpx.Client(
            base_url=f"{self.url}/api/v1/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": _user_agent(),
            },
            transport=transport,
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs) -> dict | list:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        if not response.is_success:
            raise problem(response)
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                SERVER, f"{response.url} did not answer JSON", "is BATON_URL Baton's address?"
            ) from None

    def unreachable(self, exc: httpx.TransportError) -> ApiError:
        return ApiError(SERVER, f"cannot reach {self.url}", str(exc) or type(exc).__name__)

    def submit(self, fields: dict) -> dict:
        return self.call("POST", "jobs", json=fields)

    def job(self, job_id: int) -> dict:
        return self.call("GET", f"jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[dict]:
        params = {k: v for k, v in {"status": status, "limit": limit}.items() if v is not None}
        return self.call("GET", "jobs", params=params)["results"]

    def cancel(self, job_id: int) -> dict:
        return self.call("POST", f"jobs/{job_id}/cancel")

    def retry(self, job_id: int) -> dict:
        return self.call("POST", f"jobs/{job_id}/retry")

    def rerun(self, subtask_id: int, fields: dict) -> dict:
        return self.call("POST", f"subtasks/{subtask_id}/rerun", json=fields)

    def agents(self) -> list[dict]:
        return self.call("GET", "agents")

    def start_experiment(self, fields: dict) -> dict:
        return self.call("POST", "experiments", json=fields)

    def experiment(self, experiment_id: int) -> dict:
        return self.call("GET", f"experiments/{experiment_id}")

    def compare(self, a: int, b: int) -> dict:
        return self.call("GET", f"experiments/{a}/compare/{b}")

    @contextmanager
    def events(self, job_id: int, last_id: str | None = None) -> Iterator[EventSource]:
        """The job's Server-Sent Events, from just after `last_id` when it is given."""
        headers = {"Last-Event-ID": last_id} if last_id else {}
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT_S)
        with connect_sse(
            self.http, "GET", f"jobs/{job_id}/events", headers=headers, timeout=timeout
        ) as source:
            yield source
