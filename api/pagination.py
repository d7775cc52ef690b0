"""Cursor pagination: stable under inserts, and each page an index range scan."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from .errors import InvalidQuery


class Cursor(CursorPagination):
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        # DRF answers 404 for a cursor it cannot decode, and a decoded position that does not
        # fit the ordering field fails in the query: both are a bad parameter.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (NotFound, ValidationError, ValueError, TypeError):
            if self.cursor_query_param not in request.query_params:
                raise
            raise InvalidQuery({self.cursor_query_param: ["This cursor is not valid."]}) from None


class NewestFirst(Cursor):
    ordering = ("-created_at", "-pk")


class InOrder(Cursor):
    ordering = ("pk",)


class NewestVersionFirst(Cursor):
    ordering = ("-version",)


class NewestNumberFirst(Cursor):
    ordering = ("-number",)
