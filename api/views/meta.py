"""Who is asking, what a problem type means, and the documentation page."""

from __future__ import annotations

from csp.constants import SELF
from csp.decorators import csp_update
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..errors import TYPES, problem_type_url
from ..serializers import MeSerializer


class Me(APIView):
    required = {"GET": ()}

    @extend_schema(summary="The user a request acts as, with their roles", responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        body = {
            "username": user.get_username(),
            "roles": sorted(user.groups.values_list("name", flat=True)),
            "permissions": sorted(user.get_all_permissions()),
            "token": request.auth.name if request.auth is not None else None,
        }
        return Response(MeSerializer(body).data)


class Public(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


@extend_schema(exclude=True)
class ProblemType(Public):
    """What one of Baton's problem types means: the `type` of a problem links here."""

    def get(self, request: Request, slug: str) -> Response:
        if slug not in TYPES:
            raise exceptions.NotFound(f"Baton has no problem type {slug}.")
        title, description = TYPES[slug]
        body = {"type": problem_type_url(request, slug), "title": title, "detail": description}
        return Response(body)


@extend_schema(exclude=True)
class NoSuchEndpoint(Public):
    """Anything else under /api/v1/: a problem, not the site's HTML 404 page."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise exceptions.NotFound("No such endpoint: see /api/v1/docs/.")


# Swagger UI draws its icons as data: images; nothing else is loosened.
@csp_update({"img-src": [SELF, "data:"]})
def docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI from drf-spectacular-sidecar's static files; its start-up script is a
    static file too, so no script runs inline."""
    return render(request, "api/docs.html")
