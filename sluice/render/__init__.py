"""HTML renderings of Sluice's results, shared by notebooks (``_repr_html_``) and the web UI.

This package imports neither the web stack nor heavy ML libraries: the statistics
and evaluation classes call into it from ``_repr_html_``, and ``sluice.ui`` puts the
same fragments into its pages, so a notebook and the UI show the same thing.
Fragments are self-contained (inline styles, inline SVG histograms, no script).

Example::

    from sluice import stats
    from sluice.render import statistics_html
    html = statistics_html({"train": train_stats}, compare={"eval": eval_stats})
    open("stats.html", "w").write(html)
"""

from sluice.render.evaluation import blessing_html, evaluation_html
from sluice.render.html import esc, fmt, histogram_svg, table
from sluice.render.stats import anomalies_html, schema_html, statistics_html

__all__ = [
    "anomalies_html", "blessing_html", "esc", "evaluation_html", "fmt", "histogram_svg", "schema_html",
    "statistics_html", "table",
]
