"""The site's handler400: Django's own runs the CSRF check (`@requires_csrf_token`), which
reads `request.POST` again, so a body that failed to parse once (a form in UTF-16) failed
again inside the handler and answered 500. This one reads neither the body nor the cookie."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from .errors import PROBLEM


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400, or 413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE: a problem under /api/, else a
    page rendered without the request (no context processor reads it)."""
    too_big = isinstance(exception, RequestDataTooBig)
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_big else HTTPStatus.BAD_REQUEST
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if request.path_info.startswith("/api/"):
        detail = (
            f"The request body is larger than {limit:,} bytes."
            if too_big
            else "The request could not be read."
        )
        body = {
            "type": "about:blank",
            "title": status.phrase,
            "status": status.value,
            "detail": detail,
            "instance": request.get_full_path(),
        }
        return JsonResponse(body, status=status.value, content_type=PROBLEM)
    html = loader.render_to_string("400.html", {"too_big": too_big, "limit": limit})
    return HttpResponse(html, status=status.value)
