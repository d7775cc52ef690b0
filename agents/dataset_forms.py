"""The write rules for datasets and cases, shared by the pages and the API."""

from __future__ import annotations

from pathlib import PurePath

from django import forms

from . import datasets
from .forms import BoardFilterForm
from .models import Case, Dataset, Job, JobStatus


class DatasetForm(forms.ModelForm):
    """A dataset's name and description; its slug comes from its first name."""

    class Meta:
        model = Dataset
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the dataset a name.")
        return name


class TagsField(forms.CharField):
    """A comma-separated list in the form, a JSON list in the database."""

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: object) -> list[str]:
        text = super().to_python(value)
        try:
            return datasets.clean_tags(datasets.split_tags(text, ","))
        except ValueError as exc:
            raise forms.ValidationError(str(exc).capitalize() + ".") from None


class CaseForm(forms.ModelForm):
    tags = TagsField(
        required=False,
        help_text=f"Comma-separated, at most {datasets.CASE_TAGS_MAX}, each up to "
        f"{datasets.TAG_CHARS} characters.",
    )

    class Meta:
        model = Case
        fields = ["title", "description", "expected", "notes", "tags"]
        labels = {"description": "Input (as a job's description)", "expected": "Expected output"}
        widgets = {
            "description": forms.Textarea(attrs={"rows": 4}),
            "expected": forms.Textarea(attrs={"rows": 4}),
            "notes": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the case a title.")
        return title

    def clean_description(self) -> str:
        description = self.cleaned_data["description"].strip()
        if not description:
            raise forms.ValidationError("Give the case an input.")
        return description


FORMAT_CHOICES = [("", "By the file's name"), ("jsonl", "JSONL"), ("csv", "CSV")]


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text=f"JSONL (one object a line) or CSV with a header row; UTF-8; at most "
        f"{datasets.IMPORT_MAX_BYTES // (1024 * 1024)} MB and "
        f"{datasets.IMPORT_MAX_CASES:,} cases."
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > datasets.IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file has {upload.size:,} bytes; at most "
                f"{datasets.IMPORT_MAX_BYTES:,} are taken."
            )
        return upload

    def clean(self) -> dict:
        data = super().clean()
        upload = data.get("file")
        if upload is not None and not data.get("format"):
            suffix = PurePath(upload.name or "").suffix.lower().lstrip(".")
            fmt = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl", "csv": "csv"}.get(suffix)
            if fmt is None:
                self.add_error("format", "Choose the format: the file's name does not say it.")
            data["format"] = fmt
        return data

    def read(self) -> tuple[bytes, str]:
        """The file's bytes (at most the bound) and its format, once the form is valid."""
        upload = self.cleaned_data["file"]
        return upload.read(datasets.IMPORT_MAX_BYTES + 1), self.cleaned_data["format"]


class DatasetChoiceForm(forms.Form):
    """The dataset to add jobs to: an existing one, or a new one by name."""

    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label="A new dataset…",
    )
    new_name = forms.CharField(
        required=False,
        max_length=Dataset._meta.get_field("name").max_length,
        label="New dataset's name",
    )

    def clean(self) -> dict:
        data = super().clean()
        name = (data.get("new_name") or "").strip()
        data["new_name"] = name
        if data.get("dataset") is None and not self.has_error("dataset"):
            if not name:
                self.add_error("new_name", "Choose a dataset, or name a new one.")
            elif Dataset.objects.filter(name=name).exists():
                self.add_error("new_name", "A dataset has this name already: choose it.")
        return data


class AddJobsForm(DatasetChoiceForm, BoardFilterForm):
    """The board's filter (its own field names) and the dataset to add the completed jobs
    matching it to."""

    def board_filter(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in BoardFilterForm.base_fields}


def newest_completed(filters: dict) -> tuple[list[Job], bool]:
    """The newest datasets.JOBS_MAX completed jobs the board's `filters` match, and whether
    more matched."""
    chosen = {"q": "", "status": "", "priority": None, "submitter": "", **filters}
    matching = Job.objects.filter(status=JobStatus.COMPLETED).filtered(**chosen)
    jobs = list(matching.order_by("-created_at", "-pk")[: datasets.JOBS_MAX + 1])
    return jobs[: datasets.JOBS_MAX], len(jobs) > datasets.JOBS_MAX
