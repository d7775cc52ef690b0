"""What every Baton admin shares: JSON fields bounded as the API bounds JSON, and list
filters holding text PostgreSQL cannot store refused as any bad lookup is."""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db import models

from .forms import BoundedJSONField
from .text import UNSTORABLE


class StorableChangeList(ChangeList):
    """`?model=a%00` filtered on a NUL, and PostgreSQL's DataError was a 500. Refused here,
    the admin answers as it does to a lookup it does not know: the list again, unfiltered."""

    def get_queryset(self, request, exclude_parameters=None):
        for key, values in request.GET.lists():
            if any(UNSTORABLE.search(text) for text in (key, *values)):
                raise IncorrectLookupParameters(f"The filter {key!r} holds a NUL character.")
        return super().get_queryset(request, exclude_parameters)


class BatonAdmin(admin.ModelAdmin):
    # Django's JSONField raised RecursionError on deep input and passed \u0000 to jsonb.
    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONField}}

    def get_changelist(self, request, **kwargs):
        return StorableChangeList


class LeanChangeList(StorableChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        rows = super().get_queryset(request, exclude_parameters)
        return rows.defer(*self.model_admin.list_defer)


class ListAdmin(BatonAdmin):
    # "N results (M total)" would count the whole table a second time on every page.
    show_full_result_count = False
    list_per_page = 50  # rendering, not the database, is most of a page: about 0.5 ms a row
    list_defer: tuple[str, ...] = ()  # columns the changelist never shows

    def get_changelist(self, request, **kwargs):
        return LeanChangeList


class RecordAdmin(ListAdmin):
    """For rows the system writes (calls, audit entries): browsable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
