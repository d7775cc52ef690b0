"""The write rules for experiments, shared by the pages and the API."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms

from .experiments import format_versions
from .models import Agent, AgentVersion, Dataset, Experiment, Scorer
from .text import clean

NAME_CHARS = Experiment._meta.get_field("name").max_length
VERSIONS_CHARS = 2000
PIN = re.compile(r"^(?P<slug>[-a-zA-Z0-9_]+)\s*@\s*v?(?P<number>\d{1,9})$")


def parse_versions(text: str) -> dict[str, int]:
    """ "reviewer@2, coder@v1" as {"reviewer": 2, "coder": 1}; ValidationError naming what
    cannot be read. Whether the agents and versions exist is checked by the form."""
    pins: dict[str, int] = {}
    errors = []
    for part in filter(None, (p.strip() for p in re.split(r"[,\n]", text))):
        match = PIN.match(part)
        if match is None:
            errors.append(f"“{part[:60]}” is not agent@version (for example reviewer@2).")
        elif match["slug"] in pins:
            errors.append(f"{match['slug']} is given two versions.")
        else:
            pins[match["slug"]] = int(match["number"])
    if errors:
        raise forms.ValidationError(errors)
    return pins


class ExperimentForm(forms.Form):
    """A dataset run against the agents' current versions or chosen ones, scored by the
    chosen scorers, within a budget, a few cases at a time."""

    name = forms.CharField(
        max_length=NAME_CHARS,
        required=False,
        help_text="Left empty: the dataset's name and the versions chosen.",
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.all(),
        to_field_name="slug",
        error_messages={"invalid_choice": "No such dataset."},
    )
    scorers = forms.ModelMultipleChoiceField(
        queryset=Scorer.objects.filter(enabled=True),
        to_field_name="slug",
        required=False,
        help_text="None chosen: every enabled scorer.",
        error_messages={"invalid_choice": "No enabled scorer %(value)s."},
    )
    versions = forms.CharField(
        max_length=VERSIONS_CHARS,
        required=False,
        label="Agent versions",
        help_text="As agent@version, comma-separated (reviewer@2, coder@1); "
        "agents not named run their current version.",
    )
    budget_tokens = forms.IntegerField(
        required=False, min_value=1, label="Token budget", help_text="For all its cases."
    )
    budget_cost = forms.DecimalField(
        required=False,
        min_value=Decimal("0.0001"),
        max_digits=12,
        decimal_places=4,
        label="Money budget (USD)",
    )
    concurrency = forms.IntegerField(
        min_value=1,
        max_value=50,
        initial=4,
        required=False,
        help_text="Cases running at once (1–50).",
    )

    def clean_name(self) -> str:
        return clean(self.cleaned_data["name"]).strip()

    def clean_dataset(self) -> Dataset:
        dataset = self.cleaned_data["dataset"]
        if not dataset.cases.exists():
            raise forms.ValidationError(f"{dataset.name} has no cases: add some first.")
        return dataset

    def clean_scorers(self) -> list[Scorer]:
        chosen = list(self.cleaned_data["scorers"])
        if not chosen:
            chosen = list(Scorer.objects.filter(enabled=True))
        if not chosen:
            raise forms.ValidationError("No scorer is enabled: create one first.")
        return chosen

    def clean_versions(self) -> dict[str, int]:
        pins = parse_versions(clean(self.cleaned_data["versions"]))
        if not pins:
            return pins
        agents = dict(Agent.objects.filter(slug__in=pins).values_list("slug", "pk"))
        kept = set(
            AgentVersion.objects.filter(agent_id__in=agents.values()).values_list(
                "agent__slug", "number"
            )
        )
        errors = []
        for slug, number in pins.items():
            if slug not in agents:
                errors.append(f"No agent {slug}.")
            elif (slug, number) not in kept:
                have = sorted(n for s, n in kept if s == slug)
                listed = ", ".join(f"v{n}" for n in have) or "none"
                errors.append(f"{slug} has no version {number} (it has {listed}).")
        if errors:
            raise forms.ValidationError(errors)
        return pins

    def clean_concurrency(self) -> int:
        return self.cleaned_data["concurrency"] or self.fields["concurrency"].initial

    def clean(self) -> dict:
        data = super().clean()
        if "dataset" in data and "versions" in data and not data.get("name"):
            pinned = format_versions(data["versions"]) or "current versions"
            data["name"] = f"{data['dataset'].name} ({pinned})"[:NAME_CHARS]
        return data
