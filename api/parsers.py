"""The API's one JSON parser: a bounded body, bounded nesting, and only values the database
can store. Every JSON-taking endpoint reads its body through it (REST_FRAMEWORK settings)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError

from agents.jsonvalues import JSONInputError, load_json

# The module, not its names: api.errors imports DRF's views, which load this parser.
from . import errors


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # DRF reads the stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check.
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise errors.PayloadTooLarge()
        try:
            return parsed(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not valid {encoding}: {exc.reason}.") from None


def parsed(text: str, field: str | None = None) -> object:
    """JSON text as the API takes it. The body (`field` None): too deep or not JSON is a 400
    (ParseError). One field's value holding JSON text: a 422 for that field. A value that
    cannot be stored is a 422 pointing at it either way."""
    try:
        return load_json(text)
    except JSONInputError as exc:
        if exc.too_deep and field is None:
            raise ParseError(str(exc)) from None
        inside = () if exc.too_deep else exc.path
        raise invalid_at((*_under(field), *inside), str(exc)) from None
    except ValueError as exc:
        if field is None:
            raise ParseError(f"JSON parse error - {exc}") from None
        raise invalid_at((field,), "The value is not valid JSON.") from None


def invalid_at(path: tuple, message: str) -> ValidationError:
    """A 422 whose one error points at `path` in the body (`#` for the body itself)."""
    detail: object = [ErrorDetail(message, "invalid")]
    for part in reversed(path):
        detail = {str(part): detail}
    return ValidationError(detail if path else {"non_field_errors": detail})


def _under(field: str | None) -> tuple:
    return () if field is None else (field,)
