"""Small HTML building blocks: escaping, number formatting, tables and SVG histograms.

Every fragment uses the ``sl-`` CSS classes plus inline fallbacks, so it reads
well in a notebook (no stylesheet) and takes the UI's style inside the app.

Example::

    table(["metric", "value"], [["auc", 0.78]], caption="overall")
    histogram_svg([0, 1, 2], [5, 9])            # '<svg ...>' bars
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable, Sequence
from typing import Any

from sluice.formatting import fmt

TABLE_STYLE = "border-collapse:collapse;font-size:12px;font-family:system-ui,sans-serif"
CELL_STYLE = "border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top"
ROW_STYLES = {"sl-drift": "background:#fff1e5"}


class Markup(str):
    """A string that is already HTML: :func:`table` puts it in a cell unescaped (and Jinja2 too)."""

    def __html__(self) -> str:
        return str(self)


def esc(value: Any) -> str:
    """Escape text for HTML: ``esc("<b>")`` -> ``'&lt;b&gt;'``."""
    return _html.escape(str(value), quote=True)


def cell(value: Any) -> str:
    """A value as cell HTML: :class:`Markup` as is, anything else formatted and escaped."""
    return value if isinstance(value, Markup) else esc(fmt(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None,
          css: str = "", row_classes: Sequence[str] | None = None) -> Markup:
    """A compact HTML table; cells are formatted and escaped unless they are :class:`Markup`.

    Example::

        table(["feature", "type"], [["age", "int"]], caption="schema")
    """
    parts = [f'<table class="sl-table {esc(css)}" style="{TABLE_STYLE}">']
    if caption:
        parts.append(f'<caption style="text-align:left;font-weight:bold">{esc(caption)}</caption>')
    parts.append("<thead><tr>" + "".join(f'<th style="{CELL_STYLE}">{esc(h)}</th>' for h in headers)
                 + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        klass = ""
        if row_classes and row_classes[i]:  # inline colour too: notebooks have no stylesheet
            style = ROW_STYLES.get(row_classes[i], "")
            klass = f' class="{esc(row_classes[i])}"' + (f' style="{style}"' if style else "")
        parts.append(f"<tr{klass}>" + "".join(f'<td style="{CELL_STYLE}">{cell(c)}</td>' for c in row) + "</tr>")
    parts.append("</tbody></table>")
    return Markup("".join(parts))


def histogram_svg(boundaries: Sequence[float], counts: Sequence[float], *, width: int = 160, height: int = 40,
                  color: str = "#4c78a8", title: str = "") -> Markup:
    """Bars of a histogram as inline SVG (no script); hover shows each bucket's range and count.

    Example::

        histogram_svg([0.0, 0.5, 1.0], [10, 3])
    """
    n = len(counts)
    if n == 0:
        return Markup('<span class="sl-muted">no values</span>')
    top = max(max(counts), 1)
    w = width / n
    bars = []
    for i, c in enumerate(counts):
        h = (height - 2) * c / top
        lo = boundaries[i] if i < len(boundaries) else ""
        hi = boundaries[i + 1] if i + 1 < len(boundaries) else ""
        bars.append(f'<rect x="{i * w:.1f}" y="{height - h:.1f}" width="{max(w - 1, 1):.1f}" height="{h:.1f}" '
                    f'fill="{color}"><title>[{esc(fmt(lo))}, {esc(fmt(hi))}): {esc(fmt(c))}</title></rect>')
    label = f' aria-label="{esc(title)}"' if title else ""
    return Markup(f'<svg class="sl-hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img"{label}>{"".join(bars)}</svg>')


def bars_svg(labels: Sequence[str], counts: Sequence[float], *, width: int = 160, color: str = "#4c78a8") -> Markup:
    """Horizontal bars for top values (strings): one row per value with its count."""
    if not counts:
        return Markup('<span class="sl-muted">no values</span>')
    top = max(max(counts), 1)
    row = 12
    parts = []
    for i, (label, c) in enumerate(zip(labels, counts)):
        w = (width * 0.45) * c / top
        parts.append(f'<rect x="{width * 0.55:.1f}" y="{i * row + 1}" width="{w:.1f}" height="{row - 2}" '
                     f'fill="{color}"><title>{esc(label)}: {esc(fmt(c))}</title></rect>'
                     f'<text x="0" y="{i * row + row - 2}" font-size="10">{esc(str(label)[:18])}</text>')
    height = row * len(counts)
    return Markup(f'<svg class="sl-bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img">{"".join(parts)}</svg>')


def badge(text: str, kind: str) -> Markup:
    """A colored label (``kind``: ok, bad, warn, info, or a step state)."""
    colors = {"ok": "#1a7f37", "succeeded": "#1a7f37", "bad": "#cf222e", "failed": "#cf222e", "error": "#cf222e",
              "warn": "#9a6700", "warning": "#9a6700", "cached": "#0969da", "running": "#8250df",
              "skipped": "#6e7781", "killed": "#6e7781", "info": "#0969da"}
    color = colors.get(kind, "#6e7781")
    return Markup(f'<span class="sl-badge sl-{esc(kind)}" style="color:#fff;background:{color};border-radius:8px;'
                  f'padding:0 6px;font-size:11px">{esc(text)}</span>')
