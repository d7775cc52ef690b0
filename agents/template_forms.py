"""The write rules for job templates, shared by the pages, the API and the admin: a job's
limits (agents.forms.JobForm), placeholders that fit those limits once filled, and pinned
agent versions that exist."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from . import placeholders
from .forms import PRIORITY_CHOICES, PRIORITY_DEFAULT, BoundedJSONField, JobForm, TagsField
from .job_templates import DESCRIPTION_CHARS, TITLE_CHARS, check_pins
from .models import JobTemplate
from .text import clean

PINS_CHARS = 2000
_PLACEHOLDER_HELP = "Placeholders such as {date} are filled when it is submitted."


class PinsField(BoundedJSONField):
    """{agent slug: version number} typed as JSON, at most PINS_CHARS of it."""

    def to_python(self, value: object) -> object:
        if isinstance(value, str) and len(value) > PINS_CHARS:
            raise forms.ValidationError(
                f"Keep the pinned versions to {PINS_CHARS:,} characters (they have {len(value):,})."
            )
        return super().to_python(value)

    def prepare_value(self, value: object) -> object:
        return "" if value in (None, {}) else super().prepare_value(value)  # not "null"


class JobTemplateForm(forms.ModelForm):
    priority = forms.TypedChoiceField(
        choices=PRIORITY_CHOICES, coerce=int, initial=PRIORITY_DEFAULT
    )
    budget_cost = forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=4,
        label="Money budget (USD)",
        help_text="No new LLM call starts once this much money (USD) is spent.",
    )
    tags = TagsField()
    agent_versions = PinsField(
        required=False,
        label="Pinned agent versions",
        help_text='Optional, as {"reviewer": 2}: those agents run as they were at that version.',
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = JobTemplate
        fields = [
            "name",
            "title",
            "description",
            "priority",
            "budget_tokens",
            "budget_cost",
            "review_plan",
            "agent_versions",
        ]
        labels = JobForm.Meta.labels
        help_texts = {
            "name": "Lowercase letters, digits and hyphens: how the CLI and the API name it.",
            "title": _PLACEHOLDER_HELP,
            "description": _PLACEHOLDER_HELP,
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}
        error_messages = {
            "name": {"unique": "A template has this name already."},
            **JobForm.Meta.error_messages,
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["tags"] = self.instance.tag_list

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip().lower()

    def _text(self, name: str, limit: int) -> str:
        text = clean(self.cleaned_data[name]).strip()
        placeholders.check(text)
        if (widest := placeholders.widest(text)) > limit:
            raise forms.ValidationError(
                f"With its placeholders filled this can reach {widest:,} characters; the most "
                f"a job takes is {limit:,}. Shorten it."
            )
        return text

    def clean_title(self) -> str:
        title = self._text("title", TITLE_CHARS)
        if not title:
            raise forms.ValidationError("Give the job a title.")
        return title

    def clean_description(self) -> str:
        description = self._text("description", DESCRIPTION_CHARS)
        if len(description) < 10:
            raise forms.ValidationError("Describe the job in at least 10 characters.")
        return description

    def clean_agent_versions(self) -> dict[str, int]:
        pins = self.cleaned_data["agent_versions"]
        if pins in (None, "", {}):
            return {}
        check_pins(pins)
        return pins
