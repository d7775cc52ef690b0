"""Baton's JSON API over httpx: each call returns the decoded body or raises `ApiError`,
which carries the exit code that says what went wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, connect_sse

OK, JOB_FAILED, USAGE, AUTH, NOT_FOUND, CONFLICT, SERVER = range(7)
EXIT_CODES = {401: AUTH, 403: AUTH, 404: NOT_FOUND, 409: CONFLICT, 422: USAGE}
TERMINAL = ("completed", "failed", "cancelled")
# A stream sends a keep-alive every SSE_KEEPALIVE_S (15 s by default): a longer silence
# means the connection is gone.
STREAM_READ_TIMEOUT_S = 60.0
# A submission with an Idempotency-Key is sent again, with the same key, after a lost
# connection or a gateway's error: the server makes one job for the key whatever happens.
SUBMIT_ATTEMPTS = 3
RETRY_WAIT_S = 1.0  # doubled after each attempt
RETRY_STATUSES = (502, 503, 504)


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
        return self.answer(response)

    def answer(self, response: httpx.Response) -> dict | list:
        if not response.is_success:
            raise problem(response)
        if response.status_code == 204:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                SERVER, f"{response.url} did not answer JSON", "is BATON_URL Baton's address?"
            ) from None

    def post_once(self, path: str, body: dict, key: str) -> dict:
        """POST a submission with `key` as its Idempotency-Key, sent again with the same key
        when the answer is lost: at most one job, however many attempts reached the server."""
        failure = None
        for attempt in range(SUBMIT_ATTEMPTS):
            if attempt:
                time.sleep(RETRY_WAIT_S * 2 ** (attempt - 1))
            try:
                response = self.http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError as exc:
                failure = self.unreachable(exc)
                continue
            if response.status_code in RETRY_STATUSES:
                failure = problem(response)
                continue
            return self.answer(response)
        failure.detail = (
            f"{failure.detail}; tried {SUBMIT_ATTEMPTS} times with Idempotency-Key {key}: "
            f"run it again with --idempotency-key {key} to get the job if one was made"
        ).lstrip("; ")
        raise failure

    def unreachable(self, exc: httpx.TransportError) -> ApiError:
        return ApiError(SERVER, f"cannot reach {self.url}", str(exc) or type(exc).__name__)

    def submit(self, fields: dict, key: str) -> dict:
        return self.post_once("jobs", fields, key)

    def submit_template(self, name: str, fields: dict, key: str) -> dict:
        return self.post_once(f"templates/{quote(name, safe='')}/submit", fields, key)

    def templates(self) -> list[dict]:
        return self.every("templates")

    def template(self, name: str) -> dict:
        return self.call("GET", f"templates/{quote(name, safe='')}")

    def schedules(self) -> list[dict]:
        return self.every("schedules")

    def schedule(self, schedule_id: int) -> dict:
        return self.call("GET", f"schedules/{schedule_id}")

    def create_schedule(self, fields: dict) -> dict:
        return self.call("POST", "schedules", json=fields)

    def switch_schedule(self, schedule_id: int, enabled: bool) -> dict:
        return self.call("POST", f"schedules/{schedule_id}/{'resume' if enabled else 'pause'}")

    def delete_schedule(self, schedule_id: int) -> None:
        self.call("DELETE", f"schedules/{schedule_id}")

    def bulk(self, fields: dict) -> dict:
        return self.call("POST", "jobs/bulk", json=fields)

    def every(self, path: str, most: int = 1000) -> list[dict]:
        """Every row of a paginated list (up to `most`), following its cursors."""
        rows: list[dict] = []
        page = self.call("GET", path, params={"limit": 100})
        while True:
            rows += page["results"]
            if not page.get("next") or len(rows) >= most:
                return rows[:most]
            page = self.call("GET", page["next"])

    def job(self, job_id: int) -> dict:
        return self.call("GET", f"jobs/{job_id}")

    def jobs(
        self, status: str | None = None, limit: int | None = None, tag: str | None = None
    ) -> list[dict]:
        given = {"status": status, "limit": limit, "tag": tag}
        params = {k: v for k, v in given.items() if v is not None}
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
