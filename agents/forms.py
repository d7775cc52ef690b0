"""Form fields the admin and the dashboard's forms share."""

from __future__ import annotations

from django import forms

from . import tools


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
