"""The small SVG lines that show an agent's last hour (the data: agents.series)."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from agents.series import agent_series

__all__ = ["agent_series", "sparkline_svg"]


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def sparkline_svg(
    values: list[float | None],
    width: int = 120,
    height: int = 28,
    label: str = "",
    top: float | None = None,
) -> SafeString:
    """A polyline scaled from 0 to `top` (the largest value if not given); None leaves a gap
    in the line."""
    known = [v for v in values if v is not None]
    latest = f"latest {_number(known[-1])}" if known else "no data"
    description = f"{label}: {latest}" if label else latest
    pad = 2
    top = top or max(known, default=0) or 1
    step = (width - 2 * pad) / (len(values) - 1) if len(values) > 1 else 0

    def point(index: int, value: float) -> tuple[str, str]:
        x = pad + index * step if len(values) > 1 else width / 2
        y = height - pad - value / top * (height - 2 * pad)
        return _number(x), _number(y)

    runs: list[list[tuple[str, str]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append(point(index, value))
    lines = format_html_join(
        "",
        '<polyline points="{}"/>',
        ((" ".join(f"{x},{y}" for x, y in run),) for run in runs if len(run) > 1),
    )
    dots = format_html_join(
        "", '<circle cx="{}" cy="{}" r="1.5"/>', (run[0] for run in runs if len(run) == 1)
    )
    return format_html(
        '<svg class="sparkline" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}</svg>',
        description,
        width,
        height,
        width,
        height,
        description,
        lines,
        dots,
    )
