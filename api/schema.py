"""OpenAPI generation: the bearer scheme, and the problems every operation can answer."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .errors import PROBLEM


class FieldErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    pointer = serializers.CharField(
        required=False, help_text="JSON pointer into the request body, e.g. `#/title`."
    )
    parameter = serializers.CharField(required=False, help_text="The query parameter at fault.")


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.CharField(help_text="`about:blank`, or a URL naming Baton's problem.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField(help_text="The path of the request that failed.")
    errors = FieldErrorSerializer(many=True, required=False, help_text="With 422 only.")

    class Meta:
        ref_name = "Problem"


class BatonSchema(AutoSchema):
    """Adds the problem answers an operation may give.

    Every operation: 401 and 403. With a path parameter: 404. With a body: 400 (malformed
    or too deeply nested JSON), 413 (too large) and 422; a paginated list: 422 (a bad
    cursor). A view lists others it may answer (409, 429) in `problems`, and the methods
    whose query parameters it checks in `query_problems` (422).
    """

    def _get_response_bodies(self, direction="response"):
        bodies = super()._get_response_bodies(direction)
        if direction != "response":
            return bodies
        codes = {401, 403}
        if "{" in self.path:
            codes.add(404)
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer():
            codes |= {400, 413, 422}
        if self.method in getattr(self.view, "query_problems", ()) or self._get_paginator():
            codes.add(422)  # a bad filter, or a cursor that is not one
        codes |= set(getattr(self.view, "problems", {}).get(self.method, ()))
        for code in sorted(codes):
            bodies.setdefault(str(code), self._problem(code))
        return bodies

    def _problem(self, code: int) -> dict:
        response = self._get_response_for_code(ProblemSerializer, str(code), [PROBLEM])
        response["description"] = DESCRIPTIONS[code]
        header = HEADERS.get(code)
        if header:
            response["headers"] = header
        return response


DESCRIPTIONS = {
    400: "The body is not valid JSON, or it nests deeper than 32 levels.",
    401: "No valid credentials: give `Authorization: Bearer <token>` (or log in).",
    403: "Authenticated, but the user's roles do not allow this.",
    404: "No such resource.",
    409: "The action does not apply in the resource's current state.",
    413: "The body is larger than the server takes (DATA_UPLOAD_MAX_MEMORY_SIZE).",
    422: "Invalid values: `errors` lists each.",
    429: "Too many submissions in the last hour: retry after `Retry-After` seconds.",
}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (dashboard → API tokens): acts as its owner.",
        }
