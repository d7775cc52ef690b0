"""Rendering model output: Markdown, sanitised; inline sparklines."""

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension

from agents import limiter

from ..sparkline import sparkline_svg

register = template.Library()

ALLOWED_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre"),
    *("blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"),
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"


class _RawHtmlAsText(Extension):
    """Show raw HTML in a model's answer as the text it is, instead of passing it through."""

    def extendMarkdown(self, md: markdown_lib.Markdown) -> None:
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


def render_markdown(text: str | None) -> SafeString:
    """Markdown to HTML that is safe to put on the page, whatever the text contains."""
    if not text:
        return mark_safe("")
    html = markdown_lib.markdown(
        str(text), extensions=["fenced_code", "tables", "sane_lists", _RawHtmlAsText()]
    )
    # nh3 is the guarantee: it drops anything outside the allow-list, whatever Markdown made.
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
    )
    return mark_safe(clean)  # sanitised by nh3 just above


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return render_markdown(text)


@register.simple_tag
def sparkline(values: list[float | None], label: str = "", width: int = 120, height: int = 28):
    """{% sparkline agent.series.latency "Latency (s)" %}: an inline SVG line."""
    return sparkline_svg(values or [], width=width, height=height, label=label)


@register.inclusion_tag("dashboard/_limiter.html")
def limiter_panel(oob: bool = False) -> dict:
    """The provider limiter as it stands: calls in flight against the cap, callers waiting,
    and a Redis data loss it recovered from (agents.limiter)."""
    try:
        state = limiter.state()
    except Exception:  # Redis down: say so rather than break the page
        state = None
    return {"limiter": state, "oob": oob}
