from django import forms

from agents.models import Agent, Job

PRIORITY_CHOICES = [
    (n, f"{n}" + {0: " (highest)", 5: " (default)", 9: " (lowest)"}.get(n, "")) for n in range(10)
]


class JobForm(forms.ModelForm):
    priority = forms.TypedChoiceField(choices=PRIORITY_CHOICES, coerce=int, initial=5)

    class Meta:
        model = Job
        fields = ["title", "description", "priority", "budget_tokens", "budget_cost"]
        labels = {"budget_tokens": "Token budget", "budget_cost": "Money budget (USD)"}
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("Give the job a title.")
        return title

    def clean_description(self) -> str:
        description = self.cleaned_data["description"].strip()
        if len(description) < 10:
            raise forms.ValidationError("Describe the job in at least 10 characters.")
        return description


class SpecialtiesField(forms.CharField):
    """A comma-separated list in the form, a JSON list in the database."""

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: object) -> list[str]:
        text = super().to_python(value)
        names = [s.strip().lower() for s in text.split(",") if s.strip()]
        return list(dict.fromkeys(names))


class AgentForm(forms.ModelForm):
    specialties = SpecialtiesField(help_text="Comma-separated task types, e.g. research, analysis.")

    class Meta:
        model = Agent
        fields = [
            "name",
            "slug",
            "specialties",
            "model",
            "system_prompt",
            "temperature",
            "max_tokens",
            "max_concurrency",
            "enabled",
        ]
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 3})}

    def clean_specialties(self) -> list[str]:
        specialties = self.cleaned_data["specialties"]
        if not specialties:
            raise forms.ValidationError("Give at least one specialty.")
        return specialties
