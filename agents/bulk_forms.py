"""The write rules of bulk actions, shared by the pages and the API: the board's filters
plus a time range (agents.bulk.select takes the cleaned data), and the action."""

from __future__ import annotations

from django import forms
from django.conf import settings

from .bulk import ACTIONS
from .forms import BoardFilterForm

_LABELS = {"cancel": "Cancel", "retry": "Retry", "rerun": "Re-run"}
ACTION_CHOICES = [(action, _LABELS[action]) for action in ACTIONS]


def _moment(label: str, help_text: str) -> forms.DateTimeField:
    # The browser's date and time picker; read in the site's zone (TIME_ZONE), which it names.
    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    return forms.DateTimeField(
        required=False, label=label, widget=widget, help_text=f"{help_text} ({settings.TIME_ZONE})."
    )


class BulkFilterForm(BoardFilterForm):
    created_after = _moment("Created from", "On or after this time")
    created_before = _moment("Created before", "Before this time")

    def clean(self) -> dict:
        data = super().clean()
        after, before = data.get("created_after"), data.get("created_before")
        if after is not None and before is not None and after >= before:
            raise forms.ValidationError(
                "“Created from” must come before “Created before”: no job is in that range."
            )
        return data


class BulkActionForm(BulkFilterForm):
    """The filter and what to do to the jobs it selects; `filters()` gives bulk.select's
    arguments."""

    action = forms.ChoiceField(choices=ACTION_CHOICES)

    def filters(self) -> dict:
        return {name: value for name, value in self.cleaned_data.items() if name != "action"}
