"""Draw the review page's small charts as SVG on the server: no chart library, nothing from a CDN.

The page shows them as ``data:`` images, which its Content-Security-Policy allows (img-src data:),
so the SVG never becomes part of the page's DOM and needs no script.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from xml.sax.saxutils import escape

WIDTH = 560
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif"
ACCENT = "#2563eb"  # the widget's --cb-accent
MUTED = "#64748b"  # the widget's --cb-muted
GRID = "#e2e8f0"  # the widget's --cb-border


def column_chart(points: Sequence[tuple[str, float]], value_label: str = "{:.0%}", height: int = 180) -> str:
    """Return an SVG column chart of values from 0 to 1 (a rate per day), labels under the columns."""
    top, bottom, left = 16, 28, 40
    plot_height = height - top - bottom
    peak = max([value for _, value in points] + [0.05])
    slot = (WIDTH - left) / max(len(points), 1)
    every = max(1, round(len(points) / 8))  # at most about eight labels along the axis
    parts = [_svg_open(height)]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_height * (1 - fraction)
        parts.append(f'<line x1="{left}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y + 4, value_label.format(peak * fraction), "end"))
    for index, (label, value) in enumerate(points):
        bar = plot_height * value / peak
        x = left + index * slot + slot * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_height - bar:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar:.1f}" rx="2" fill="{ACCENT}"><title>{escape(label)}: '
            f"{escape(value_label.format(value))}</title></rect>"
        )
        if index % every == 0:
            parts.append(_text(x + slot * 0.35, height - 8, label, "middle"))
    if not points:
        parts.append(_text(WIDTH / 2, height / 2, "no messages yet", "middle"))
    return "".join([*parts, "</svg>"])


def bar_chart(rows: Sequence[tuple[str, int]], row_height: int = 24) -> str:
    """Return an SVG horizontal bar chart of counts, one labelled bar a row, largest first as given."""
    label_width, number_width = 150, 56
    height = max(len(rows), 1) * row_height + 8
    peak = max([count for _, count in rows] + [1])
    parts = [_svg_open(height)]
    for index, (label, count) in enumerate(rows):
        y = 4 + index * row_height
        length = (WIDTH - label_width - number_width) * count / peak
        parts.append(_text(label_width - 8, y + row_height * 0.65, label[:22], "end"))
        parts.append(
            f'<rect x="{label_width}" y="{y + 4}" width="{max(length, 1):.1f}" height="{row_height - 8}" '
            f'rx="2" fill="{ACCENT}"/>'
        )
        parts.append(_text(label_width + length + 6, y + row_height * 0.65, str(count), "start"))
    if not rows:
        parts.append(_text(WIDTH / 2, height / 2 + 4, "no messages yet", "middle"))
    return "".join([*parts, "</svg>"])


def data_url(svg: str) -> str:
    """Return the SVG as a ``data:`` URL for an <img>."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _svg_open(height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="11">'
    )


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{MUTED}">{escape(text)}</text>'
