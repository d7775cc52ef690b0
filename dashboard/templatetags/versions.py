from django import template

from agents import versions

register = template.Library()


@register.filter
def with_version(name: str, number: int | None) -> str:
    """An agent's name and the version the work ran with ("Reviewer v7"); the name alone
    for work recorded before versions were."""
    return versions.label(name, number)


@register.filter
def config_value(value: object) -> str:
    """A versioned field's value as the versions page shows it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)
