"""Forms the admin and the dashboard share: tool grants, MCP servers, bounded JSON."""

from __future__ import annotations

from django import forms
from django.forms.fields import InvalidJSONInput

from . import mcp, tools
from .jsonvalues import JSONInputError, check_json, too_deep
from .models import MCPServer


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
