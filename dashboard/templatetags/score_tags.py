from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def job_scores(context, job) -> str:
    """The job page's scores and, for those who may, a 1–5 rating form."""
    return ""
