"""Small rendering helpers shared by the statistics and evaluation results.

One HTML table builder backs every ``_repr_html_`` (statistics, schema,
anomalies, evaluation results, blessings), so they all look alike in a
notebook; one number formatter keeps text summaries short and stable.

Example::

    html_table(["metric", "value"], [["auc", 0.78]], caption="overall")
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

_STYLE = ("border-collapse:collapse;font-size:12px;font-family:monospace",
          "border:1px solid #ccc;padding:2px 6px;text-align:left")


def fmt(value: Any, digits: int = 4) -> str:
    """Format a value for people: numbers with ``digits`` significant digits, None as ``-``.

    Example::

        fmt(0.781234)  # '0.7812'
        fmt(None)      # '-'
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        # Large magnitudes read better in fixed notation than as 1.235e+04.
        if value != 0 and 1e4 <= abs(value) < 1e15:
            return f"{value:.1f}" if value != int(value) else str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None) -> str:
    """Render a compact HTML table; cells are formatted with :func:`fmt` and escaped.

    Example::

        html_table(["feature", "type"], [["age", "int"]], caption="schema")
    """
    table_style, cell_style = _STYLE
    parts = [f'<table style="{table_style}">']
    if caption:
        parts.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>')
    parts.append("<tr>" + "".join(f'<th style="{cell_style}">{html.escape(str(h))}</th>' for h in headers) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f'<td style="{cell_style}">{html.escape(fmt(c))}</td>' for c in row) + "</tr>")
    parts.append("</table>")
    return "".join(parts)
