"""The write rules: what may be submitted for a job, an agent, a plan's subtask, a re-run or
an MCP server. Every face applies them (the pages, the API, the admin)."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.forms.fields import InvalidJSONInput

from . import mcp, rerun, tags, tools
from .jsonvalues import JSONInputError, check_json, too_deep
from .models import (
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    SUBTASK_DESCRIPTION_CHARS,
    Agent,
    Job,
    MCPServer,
    Subtask,
)
from .planning import KEY_CHARS, KEY_RE, TYPE_CHARS, normalise_type
from .tags import TAGS_CHARS

PRIORITY_DEFAULT = Job._meta.get_field("priority").default
_MARKS = {
    PRIORITY_HIGHEST: " (highest)",
    PRIORITY_DEFAULT: " (default)",
    PRIORITY_LOWEST: " (lowest)",
}
PRIORITY_CHOICES = [
    (n, f"{n}{_MARKS.get(n, '')}") for n in range(PRIORITY_HIGHEST, PRIORITY_LOWEST + 1)
]
DESCRIPTION_MAX = Job._meta.get_field("description").max_length


class BoundedJSONField(forms.JSONField):
    """Django's JSONField with Baton's bounds (agents.jsonvalues): JSON nested past the
    bound, text PostgreSQL cannot store (NUL, a lone surrogate) or a number that is not
    finite is a form error. Django's own raised RecursionError on deep input and passed
    `\\u0000` on to jsonb: a 500 either way."""

    def to_python(self, value: object) -> object:
        try:
            converted = super().to_python(value)
            if not self.disabled:
                check_json(converted)
        except RecursionError:
            raise forms.ValidationError(str(too_deep()), code="too_deep") from None
        except JSONInputError as exc:
            where = "" if exc.too_deep or not exc.path else f" (at {_pointer(exc.path)})"
            raise forms.ValidationError(f"{exc}{where}", code="invalid") from None
        return converted

    def bound_data(self, data: object, initial: object) -> object:
        """Refused JSON is shown again as typed, as Django shows JSON it cannot parse:
        encoding a deep value again for the page would recurse too."""
        try:
            value = super().bound_data(data, initial)
            if not self.disabled:
                check_json(value)
        except (RecursionError, JSONInputError):
            return InvalidJSONInput(data)
        return value


def _pointer(path: tuple) -> str:
    return "/" + "/".join(str(part) for part in path)


class ToolsField(forms.MultipleChoiceField):
    """An agent's tool grants as checkboxes: the tools there are now (`tools.available`),
    and any the agent holds that are not offered any more, so that saving keeps them. Call
    `offer` with the agent's grants once the form is built."""

    widget = forms.CheckboxSelectMultiple
    default_error_messages = {
        "invalid_choice": "There is no tool %(value)s: grant a built-in tool or a tool of a "
        "registered MCP server (the Tools page lists them).",
        "invalid_list": 'Give the tools as a list of names, e.g. ["read_state"].',
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text",
            "What the agent may call while it works on a subtask; each call is in the trace.",
        )
        super().__init__(**kwargs)

    def offer(self, held: list[str]) -> None:
        choices = tools.available()
        listed = {name for name, _ in choices}
        gone = [(name, f"{name} (not offered now)") for name in held if name not in listed]
        self.choices = [*choices, *gone]


class MCPServerForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=MCPServer._meta.get_field("url").max_length,
        assume_scheme="https",
        help_text="The streamable HTTP endpoint, e.g. https://tools.example.com/mcp",
    )

    class Meta:
        model = MCPServer
        fields = ["name", "slug", "url", "auth_env", "enabled"]
        labels = {"auth_env": "Token variable"}
        help_texts = {
            "slug": "Grants name its tools slug/tool; it cannot change once registered.",
            "auth_env": "Name of the environment variable (MCP_…) of Baton's processes that "
            "holds its bearer token; empty if it needs none. Never the token itself.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dropped_token = ""  # the variable a URL change dropped, for a message
        if self.instance.pk:
            self.fields["slug"].disabled = True

    def _forget(self, field: str) -> None:
        """Not shown again in the form (it holds a secret)."""
        self.data = self.data.copy()
        self.data[self.add_prefix(field)] = ""

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            mcp.check_url(url)
        except mcp.ServerError as exc:
            if "credentials" in str(exc):
                self._forget("url")
            raise forms.ValidationError(str(exc)) from None
        return url

    def clean_auth_env(self) -> str:
        name = self.cleaned_data["auth_env"].strip()
        if name and not mcp.AUTH_ENV.match(name):
            self._forget("auth_env")  # what was typed may be the token itself
            raise forms.ValidationError(f"Give the name of {mcp.AUTH_ENV_RULE}, not a token.")
        return name

    def clean(self) -> dict:
        """A new URL drops the token variable the server had (as MCPServer.save does); one
        named for it must be allowed its origin by the deployer (MCP_TOKEN_ORIGINS)."""
        data = super().clean()
        url, name = data.get("url"), data.get("auth_env")
        if not url or not name:
            return data
        if self.instance.pk and url != self.instance.url and name == self.instance.auth_env:
            self.dropped_token, data["auth_env"] = name, ""
            self._forget("auth_env")
        elif refused := mcp.token_refusal(name, url):
            self.add_error("auth_env", refused)
        return data

    def dropped_message(self) -> str:
        return (
            f"The URL changed, so the token in {self.dropped_token} is not sent to it: name "
            "the variable again if the new URL takes it."
            if self.dropped_token
            else ""
        )


class TagsField(forms.CharField):
    """Tags typed as words with commas or spaces between them; cleaned to a list
    (agents.tags.parse), shown again as the words."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", TAGS_CHARS)
        kwargs.setdefault("help_text", "Words with commas between them, such as nightly, research.")
        super().__init__(**kwargs)

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value: object) -> list[str]:
        if isinstance(value, (list, tuple)):
            return tags.parse(value)
        return tags.parse(super().to_python(value))

    def validate(self, value: object) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def run_validators(self, value: object) -> None:
        return None  # parse bounds the tags; the length check would see a list


class JobForm(forms.ModelForm):
    priority = forms.TypedChoiceField(
        choices=PRIORITY_CHOICES, coerce=int, initial=PRIORITY_DEFAULT
    )
    tags = TagsField()
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
    tag = forms.CharField(required=False, max_length=tags.TAG_CHARS)

    def clean_tag(self) -> str:
        return self.cleaned_data["tag"].strip().lower()


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

    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=SUBTASK_DESCRIPTION_CHARS
    )
    type = forms.CharField(max_length=TYPE_CHARS)
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
    key = forms.CharField(max_length=KEY_CHARS, label="Id")
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


class RerunForm(forms.Form):
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=SUBTASK_DESCRIPTION_CHARS,
        help_text="What this step is asked to do in the re-run.",
    )
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(),
        required=False,
        to_field_name="slug",
        help_text="Enabled agents that may run a step of this type.",
    )
    version = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Run the agent as it was at this version (blank: its current one).",
    )
    submit_token = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, sub: Subtask, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["submit_token"] = uuid.uuid4()
        allowed = [a.pk for a in rerun.eligible_agents(sub.type)]
        field = self.fields["agent"]
        field.queryset = Agent.objects.filter(pk__in=allowed).order_by("name")
        field.empty_label = f"As the plan chose ({sub.assign_hint or 'best by score'})"
        if sub.agent is not None:
            self.fields["version"].help_text = (
                f"Run the agent as it was at this version (blank: its current one); "
                f"{sub.agent.name}, which ran this step, has versions 1 to {sub.agent.version}."
            )
