import uuid

from django import forms
from django.conf import settings

from agents.forms import ToolsField
from agents.models import Agent, Job, Subtask
from agents.planning import KEY_RE, normalise_type

PRIORITY_CHOICES = [
    (n, f"{n}" + {0: " (highest)", 5: " (default)", 9: " (lowest)"}.get(n, "")) for n in range(10)
]
DESCRIPTION_MAX = Job._meta.get_field("description").max_length


class JobForm(forms.ModelForm):
    priority = forms.TypedChoiceField(choices=PRIORITY_CHOICES, coerce=int, initial=5)
    submit_token = forms.UUIDField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Job
        fields = ["title", "description", "priority", "budget_tokens", "budget_cost", "review_plan"]
        labels = {
            "budget_tokens": "Token budget",
            "budget_cost": "Money budget (USD)",
            "review_plan": "Review the plan before it runs",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}
        error_messages = {
            "description": {
                "max_length": f"Keep the description under {DESCRIPTION_MAX:,} characters "
                "(it has %(show_value)d). Put long material in a file and summarise it."
            }
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["submit_token"] = uuid.uuid4()

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


class BoardFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *Job._meta.get_field("status").choices]
    )
    priority = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Any priority"), *PRIORITY_CHOICES],
    )
    submitter = forms.CharField(required=False, label="Submitted by")


class SpecialtiesField(forms.CharField):
    """A comma-separated list in the form, a JSON list in the database."""

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: object) -> list[str]:
        text = super().to_python(value)
        names = [s.strip().lower() for s in text.split(",") if s.strip()]
        return list(dict.fromkeys(names))


class AgentForm(forms.ModelForm):
    specialties = SpecialtiesField(
        help_text="Comma-separated task types, e.g. research, coding (at most 12), named as a "
        "plan names them: analysis is stored as research."
    )
    tools = ToolsField()

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
            "tools",
            "max_tool_steps",
            "needs_approval",
        ]
        labels = {"max_tool_steps": "Max model calls with tools"}
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tools"].offer(self.instance.tools)
        self.fields["max_tool_steps"].required = False  # scripts written before it

    def clean_max_tool_steps(self) -> int:
        steps = self.cleaned_data["max_tool_steps"]
        return self.instance.max_tool_steps if steps is None else steps

    def clean_specialties(self) -> list[str]:
        specialties = self.cleaned_data["specialties"]
        if not specialties:
            raise forms.ValidationError("Give at least one specialty.")
        return specialties


class SubtaskForm(forms.Form):
    """One planned subtask, as an operator edits it in plan review."""

    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000)
    type = forms.CharField(max_length=50)
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.filter(enabled=True),
        required=False,
        empty_label="Best by score",
        to_field_name="slug",
    )

    def __init__(self, *args, agent_choices: list | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if agent_choices is not None:
            self.fields["agent"].choices = agent_choices

    @classmethod
    def agent_choices(cls) -> list:
        """The agent select's options, read once for every form of a plan (each form's
        select would otherwise read the agents again)."""
        return list(cls.base_fields["agent"].choices)

    def clean_type(self) -> str:
        kind = normalise_type(self.cleaned_data["type"])
        if not kind:
            raise forms.ValidationError("Give the subtask a type, e.g. research.")
        return kind


class NewSubtaskForm(SubtaskForm):
    key = forms.CharField(max_length=64, label="Id")
    depends_on = forms.ModelMultipleChoiceField(
        queryset=Subtask.objects.none(), required=False, to_field_name="key"
    )

    def __init__(self, *args, job: Job, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        self.fields["depends_on"].queryset = job.subtasks.all()

    def clean(self) -> dict:
        limit = settings.PLAN_MAX_SUBTASKS
        if self.job.subtasks.count() >= limit:
            raise forms.ValidationError(
                f"A plan holds at most {limit} subtasks (PLAN_MAX_SUBTASKS): "
                "delete one before adding another."
            )
        return super().clean()

    def clean_key(self) -> str:
        key = KEY_RE.sub("-", self.cleaned_data["key"].strip().lower()).strip("-")
        if not key:
            raise forms.ValidationError("Give the subtask an id of letters, digits or dashes.")
        if self.job.subtasks.filter(key=key).exists():
            raise forms.ValidationError(f"This plan has a subtask {key} already.")
        return key
