"""The write rules for scorers, shared by the pages and the API: a scorer's name, kind,
threshold, online sampling, and the settings its kind reads, gathered into Scorer.config and
checked by agents.judging (the same check scoring applies)."""

from __future__ import annotations

from django import forms

from . import judging
from .forms import BoundedJSONField
from .models import Scorer
from .planning import TYPE_CHARS, normalise_type

# Where each setting of Scorer.config is edited: judging names the setting, the form a field.
CONFIG_FIELDS = {
    "rubric": "rubric",
    "model": "judge_model",
    "text": "text",
    "case_sensitive": "case_sensitive",
    "pattern": "pattern",
    "schema": "schema",
    "min": "min_length",
    "max": "max_length",
}
# The form's fields each kind reads.
KIND_FIELDS = {
    Scorer.Kind.JUDGE: ("rubric", "judge_model"),
    Scorer.Kind.EXACT: ("case_sensitive",),
    Scorer.Kind.CONTAINS: ("text", "case_sensitive"),
    Scorer.Kind.REGEX: ("pattern",),
    Scorer.Kind.JSON_SCHEMA: ("schema",),
    Scorer.Kind.LENGTH: ("min_length", "max_length"),
}
WRITTEN = ("name", "kind", "threshold", "online_type", "sample_rate", "enabled")


class ScorerForm(forms.ModelForm):
    rubric = forms.CharField(
        required=False,
        max_length=judging.RUBRIC_CHARS,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="LLM judge: what a good output does. Empty: correct, complete and helpful.",
    )
    judge_model = forms.CharField(
        label="Judge model",
        required=False,
        max_length=100,
        help_text="LLM judge: the model that judges; empty for the default.",
    )
    text = forms.CharField(
        label="Text to look for",
        required=False,
        max_length=judging.TEXT_CHARS,
        help_text="Contains: empty looks for the case's expected output.",
    )
    case_sensitive = forms.BooleanField(
        label="Case-sensitive",
        required=False,
        help_text="Exact match and contains: upper and lower case differ.",
    )
    pattern = forms.CharField(
        label="Regular expression",
        required=False,
        max_length=judging.PATTERN_CHARS,
        strip=False,
        help_text="Regular expression (Python syntax): the output passes when it matches, "
        f"searched in its first {judging.MATCH_INPUT_CHARS:,} characters.",
    )
    schema = BoundedJSONField(
        label="JSON schema",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Valid JSON: the output must be JSON matching this schema "
        f"(at most {judging.SCHEMA_CHARS:,} characters, {judging.SCHEMA_DEPTH} levels).",
    )
    min_length = forms.IntegerField(
        label="Minimum length",
        required=False,
        min_value=0,
        max_value=judging.LENGTH_MAX,
        help_text="Length bounds: characters, the output trimmed.",
    )
    max_length = forms.IntegerField(
        label="Maximum length",
        required=False,
        min_value=0,
        max_value=judging.LENGTH_MAX,
    )

    class Meta:
        model = Scorer
        fields = ["name", "kind", "threshold", "online_type", "sample_rate", "enabled"]
        labels = {"online_type": "Score live work of type", "sample_rate": "Sample rate"}
        help_texts = {
            "threshold": "From 0 to 1: a score at or above it passes.",
            "online_type": "Completed live subtasks of this type (e.g. coding) are scored at "
            "the sample rate; empty for none.",
            "sample_rate": "From 0 to 1: the share of those subtasks scored (0.1 is one in ten).",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        config = (self.instance.config or {}) if self.instance.pk else {}
        for setting, field in CONFIG_FIELDS.items():
            if setting in config and config[setting] is not None:
                self.initial.setdefault(field, config[setting])
        if not self.instance.pk:
            self.initial.setdefault("schema", {"type": "object"})

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the scorer a name.")
        return name

    def clean_online_type(self) -> str:
        raw = self.cleaned_data["online_type"]
        kind = normalise_type(raw) if raw.strip() else ""
        if len(kind) > TYPE_CHARS:
            raise forms.ValidationError(f"At most {TYPE_CHARS} characters.")
        return kind

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("kind")
        if data.get("sample_rate") and not data.get("online_type"):
            self.add_error("online_type", "Name the type of live work to sample.")
        if kind not in KIND_FIELDS or any(f in self.errors for f in KIND_FIELDS[kind]):
            return data
        settings_given = {
            setting: data.get(field)
            for setting, field in CONFIG_FIELDS.items()
            if field in KIND_FIELDS[kind]
        }
        if kind == Scorer.Kind.JSON_SCHEMA and settings_given.get("schema") is None:
            self.add_error("schema", "Give the schema the output must match.")
            return data
        try:
            data["config"] = judging.check_config(kind, settings_given)
        except judging.ScorerConfigError as exc:
            field = CONFIG_FIELDS.get(exc.field, exc.field)
            message = str(exc)
            self.add_error(
                field if field in self.fields else None,
                message[:1].upper() + message[1:] + ("" if message.endswith(".") else "."),
            )
        return data

    def scorer_fields(self) -> dict:
        """What the actions write: the model's fields and the checked config."""
        return {
            **{name: self.cleaned_data[name] for name in WRITTEN},
            "config": self.cleaned_data["config"],
        }
