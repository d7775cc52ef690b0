from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def add_to_dataset(context, job) -> str:
    """The job page's "Add to dataset" control (for finished jobs, to those who may)."""
    return ""
