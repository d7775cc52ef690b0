"""Every API error as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.urls import reverse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

# Baton's own problem types; every other error is `about:blank` with the HTTP status phrase.
TYPES = {
    "validation": (
        "Validation failed",
        "The request was understood, but some of its values cannot be accepted: "
        "`errors` lists each, with a JSON pointer into the body or the query parameter.",
    ),
    "conflict": (
        "Not allowed in this state",
        "The action does not apply to the resource as it is now (a job that already ended "
        "cannot be cancelled; only a failed or cancelled job can be retried; a plan can "
        "only change while it awaits review).",
    ),
    "idempotency-key-reused": (
        "Idempotency key already used",
        "The Idempotency-Key was sent before with another request (another body or another "
        "endpoint) in the last IDEMPOTENCY_KEY_TTL_S seconds. Send a new key with a new "
        "request; the same key with the same request returns the job it made.",
    ),
    "submission-limit": (
        "Submission limit reached",
        "The user has submitted JOB_SUBMISSIONS_PER_HOUR jobs in the last hour. "
        "Retry-After says when the next one will be accepted.",
    ),
}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This action does not apply in the resource's current state."
    default_code = "conflict"
    problem_type = "conflict"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    problem_type = "idempotency-key-reused"


class SubmissionLimitReached(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "submission_limit"
    problem_type = "submission-limit"

    def __init__(self, detail: str, wait: int) -> None:
        super().__init__(detail)
        self.wait = wait  # DRF's handler turns it into Retry-After


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than {limit:,} bytes.")


class InvalidQuery(exceptions.ValidationError):
    """A validation error about query parameters rather than the body."""


def get_or_404(rows, label: str, **lookup):
    """The one row of `rows` matching `lookup`, or a 404 that names what was asked for."""
    found = rows.filter(**lookup).first()
    if found is None:
        raise exceptions.NotFound(f"No {label} {' '.join(map(str, lookup.values()))}.")
    return found


def problem_type_url(request, slug: str) -> str:
    return request.build_absolute_uri(reverse("api-problem-type", args=[slug]))


def handle(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: DRF's own answer (status, WWW-Authenticate, Retry-After),
    re-shaped as a problem; an unexpected error is logged and answered with a bare 500."""
    request = context["request"]
    exc = _from_django(exc)
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
        response = Response(status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        detail = "Something went wrong on our side; it has been logged."
    elif isinstance(exc, exceptions.ValidationError):
        response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
        detail = "Some values in the request are not valid: see `errors`."
    else:
        detail = str(getattr(exc, "detail", "")) or HTTPStatus(response.status_code).description
    body = {
        "type": "about:blank",
        "title": HTTPStatus(response.status_code).phrase,
        "status": response.status_code,
        "detail": detail,
        "instance": request.get_full_path(),
    }
    slug = getattr(exc, "problem_type", "validation" if response.status_code == 422 else None)
    if slug:
        body["type"] = problem_type_url(request, slug)
        body["title"] = TYPES[slug][0]
    if isinstance(exc, exceptions.ValidationError):
        where = "parameter" if isinstance(exc, InvalidQuery) else "pointer"
        body["errors"] = list(field_errors(exc.detail, where))
    response.data = body
    response.content_type = PROBLEM
    return response


def _from_django(exc: Exception) -> Exception:
    """Django's refusals of a request (raised when DRF reads it) as the API's problems."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, BadRequest):
        return exceptions.ParseError(str(exc))
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError()
    return exc


def field_errors(detail, where: str, path: tuple[str, ...] = ()):
    """DRF's nested error detail as flat `{detail, code, pointer | parameter}` entries."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = path if key in ("non_field_errors", "__all__") else (*path, str(key))
            yield from field_errors(value, where, inner)
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            nested = isinstance(value, dict | list)
            yield from field_errors(value, where, (*path, str(index)) if nested else path)
    else:
        if where == "pointer":
            place = "#" + "".join(f"/{part.replace('~', '~0').replace('/', '~1')}" for part in path)
        else:
            place = ".".join(path)
        yield {"detail": str(detail), "code": getattr(detail, "code", "invalid"), where: place}
