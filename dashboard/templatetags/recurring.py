"""The board's "From a template" menu."""

import uuid

from django import template
from django.template.loader import render_to_string

from agents.models import JobTemplate

register = template.Library()

# The menu lists the first templates by name; the templates page lists them all.
MENU_TEMPLATES = 20


@register.simple_tag(takes_context=True)
def board_templates(context) -> str:
    """One-click submits of the saved templates, for those who may submit jobs. Each button
    carries a fresh submit token: a double click makes one job."""
    request = context.get("request")
    if request is None or not request.user.has_perm("agents.add_job"):
        return ""
    templates = list(JobTemplate.objects.only("name", "title")[: MENU_TEMPLATES + 1])
    if not templates:
        return ""
    shown = [(t, uuid.uuid4()) for t in templates[:MENU_TEMPLATES]]
    context = {"templates": shown, "more": len(templates) > MENU_TEMPLATES}
    return render_to_string("dashboard/_board_templates.html", context, request=request)
