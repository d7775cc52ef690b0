"""The write rules of bulk actions, shared by the pages and the API: the board's filters
plus a time range (agents.bulk.select takes the cleaned data), and the action."""

from __future__ import annotations

from django import forms

from .bulk import ACTIONS
from .forms import BoardFilterForm

_LABELS = {"cancel": "Cancel", "retry": "Retry", "rerun": "Re-run"}
ACTION_CHOICES = [(action, _LABELS[action]) for action in ACTIONS]


class BulkFilterForm(BoardFilterForm):
    created_after = forms.DateTimeField(
        required=False, label="Created from", help_text="On or after this time."
    )
    created_before = forms.DateTimeField(
        required=False, label="Created before", help_text="Before this time."
    )

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
