"""HTML for statistics (one dataset, or two side by side with drift), schemas and anomalies.

Objects are duck-typed (``sluice.stats`` classes), so this module imports nothing heavy.

Example::

    statistics_html(train, eval_stats, labels=("train", "eval"), schema=schema, anomalies=anomalies)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.render.html import Markup, badge, bars_svg, esc, fmt, histogram_svg, table

DEFAULT_HIGHLIGHT = 0.1  # distance marked as drift when the schema sets no threshold


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _summary(f: Any) -> Markup:
    """Numbers of one feature in one dataset, as a few short lines."""
    total = f.count + f.missing
    lines = [f"count {fmt(f.count)}", f"missing {fmt(f.missing)} ({_pct(f.missing, total)})"]
    n, s = f.numeric, f.string
    if n is not None:
        lines += [f"mean {fmt(n.mean)} std {fmt(n.std)}", f"min {fmt(n.min)} max {fmt(n.max)}",
                  f"zeros {fmt(n.zeros)}" + (f" non-finite {fmt(n.non_finite)}" if n.non_finite else "")]
        if n.median is not None:
            lines.append(f"median {fmt(n.median)}")
    elif s is not None:
        lines += [f"distinct {fmt(s.distinct)} empty {fmt(s.empty)}",
                  f"length {fmt(s.min_length)}..{fmt(s.max_length)} (avg {fmt(s.avg_length)})"]
    return Markup("<br>".join(esc(x) for x in lines))


def _chart(f: Any, color: str) -> Markup:
    if f.numeric is not None:
        h = f.numeric.histogram
        return histogram_svg(h.boundaries, h.counts, color=color, title=f"{f.name} histogram") if h else \
            Markup('<span class="sl-muted">no finite values</span>')
    if f.string is not None:
        top = f.string.top_values[:8]
        return bars_svg([v.value for v in top], [v.count for v in top], color=color)
    return Markup("")


def _schema_cell(fs: Any) -> Markup:
    if fs is None:
        return Markup('<span class="sl-muted">not in schema</span>')
    parts = [f"{fs.type}{' required' if fs.required else ''}"]
    if fs.min is not None or fs.max is not None:
        parts.append(f"range [{fmt(fs.min)}, {fmt(fs.max)}]")
    if fs.domain is not None:
        shown = ", ".join(fs.domain[:5]) + (f" (+{len(fs.domain) - 5})" if len(fs.domain) > 5 else "")
        parts.append(f"domain {shown}")
    if fs.drift_threshold is not None:
        parts.append(f"drift ≤ {fmt(fs.drift_threshold)}")
    if fs.skew_threshold is not None:
        parts.append(f"skew ≤ {fmt(fs.skew_threshold)}")
    return Markup("<br>".join(esc(p) for p in parts))


def _anomaly_cell(items: Sequence[Any]) -> Markup:
    if not items:
        return Markup("")
    return Markup("<br>".join(f"{badge(a.severity, a.severity)} {esc(a.kind)}"
                              f"{' [' + esc(a.split) + ']' if a.split else ''}: {esc(a.seen)}" for a in items))


def feature_distances(left: Any, right: Any) -> dict[str, Any]:
    """Per feature present on both sides, the drift distance (``sluice.stats.drift.Distance``)."""
    from sluice.stats.drift import feature_distance

    out: dict[str, Any] = {}
    for f in left:
        if f.name in right:
            try:
                out[f.name] = feature_distance(f, right[f.name])
            except ValueError:  # a string column on one side, a number on the other
                continue
    return out


def statistics_html(left: Any, right: Any | None = None, *, labels: tuple[str, str] | None = None,
                    schema: Any | None = None, anomalies: Any | None = None,
                    highlight: float = DEFAULT_HIGHLIGHT) -> Markup:
    """Statistics of one dataset, or two side by side with each feature's drift distance.

    A feature whose distance exceeds its schema ``drift_threshold`` (or ``highlight`` when the schema
    sets none) gets the row class ``sl-drift`` and a "drift" badge. ``schema`` and ``anomalies`` add
    a column each: the feature's schema entry and the anomalies found for it.

    Example::

        statistics_html(train, eval_stats, labels=("train", "eval"), schema=schema)
    """
    names = labels or (left.split or "dataset", (right.split or "other") if right is not None else "")
    headers = ["feature", "type", f"{names[0]}", f"{names[0]} distribution"]
    if right is not None:
        headers += [f"{names[1]}", f"{names[1]} distribution", "distance"]
    if schema is not None:
        headers.append("schema")
    if anomalies is not None:
        headers.append("anomalies")
    distances = feature_distances(left, right) if right is not None else {}
    by_feature: dict[str, list[Any]] = {}
    for a in (anomalies or []):
        by_feature.setdefault(a.feature or "", []).append(a)
    rows, classes = [], []
    drifted = 0
    for f in left:
        row: list[Any] = [Markup(f'<span class="sl-feature">{esc(f.name)}</span>'), f.type, _summary(f),
                          _chart(f, "#4c78a8")]
        klass = ""
        if right is not None:
            other = right[f.name] if f.name in right else None
            row += [_summary(other) if other else Markup('<span class="sl-muted">absent</span>'),
                    _chart(other, "#f58518") if other else Markup("")]
            d = distances.get(f.name)
            fs = schema.features.get(f.name) if schema is not None else None
            limit = fs.drift_threshold if fs is not None and fs.drift_threshold is not None else highlight
            if d is None:
                row.append("-")
            else:
                over = d.value > limit
                text = f"{fmt(d.value, 3)} {'L∞' if d.metric.startswith('L-inf') else 'JS'}"
                if d.moved_value is not None:
                    text += f" ({d.moved_value}: {fmt(d.share_a, 2)} → {fmt(d.share_b, 2)})"
                row.append(Markup((badge("drift", "bad") + " " if over else "") +
                                  f'<span class="sl-distance" title="limit {esc(fmt(limit))}">{esc(text)}</span>'))
                if over:
                    klass, drifted = "sl-drift", drifted + 1
        if schema is not None:
            row.append(_schema_cell(schema.features.get(f.name)))
        if anomalies is not None:
            row.append(_anomaly_cell(by_feature.get(f.name, [])))
        rows.append(row)
        classes.append(klass)
    caption = f"{names[0]}: {fmt(left.num_rows)} rows, {len(left.features)} features"
    if right is not None:
        caption += f" | {names[1]}: {fmt(right.num_rows)} rows | {drifted} feature(s) drifted"
    return table(headers, rows, caption=caption, css="sl-stats", row_classes=classes)


def schema_html(schema: Any) -> Markup:
    """A schema as a table: type, presence, range, domain and drift/skew thresholds per feature.

    Example::

        schema_html(stats.Schema.load("schema.yaml"))
    """
    rows = [[f.name, f.type, f.required, f.min_fraction, f.allow_missing, f.strict,
             "" if f.min is None and f.max is None else f"[{fmt(f.min)}, {fmt(f.max)}]",
             "" if f.domain is None else _short(f.domain),
             f.drift_threshold, f.skew_threshold] for f in schema]
    return table(["feature", "type", "required", "min_fraction", "allow_missing", "strict", "range", "domain",
                  "drift", "skew"], rows, caption=f"schema: {len(schema.features)} features", css="sl-schema")


def anomalies_html(anomalies: Any) -> Markup:
    """Anomalies with severities, and drift/skew distances side by side when there are any.

    Example::

        anomalies_html(stats.validate(eval_stats, schema))
    """
    items = list(anomalies)
    head = anomalies.summary().splitlines()[0]
    if not items:
        return Markup(f'<p class="sl-anomalies sl-none">{esc(head)}</p>')
    rows = [[badge(a.severity, a.severity), a.split or "", a.feature or "", a.kind, a.expected, a.seen] for a in items]
    out = table(["severity", "split", "feature", "kind", "expected", "seen"], rows, caption=head, css="sl-anomalies")
    moved = [a for a in items if a.distance is not None]
    if moved:
        out = Markup(out + table(
            ["severity", "kind", "feature", "metric", "distance", "threshold", "reference", "compared",
             "value moved most", "share before", "share after"],
            [[badge(a.severity, a.severity), a.kind, a.feature, a.metric, a.distance, a.threshold, a.reference,
              a.compared, a.moved_value, _share(a.reference_share), _share(a.compared_share)] for a in moved],
            caption="distribution changes (drift: previous span -> this one; skew: training -> serving)"))
    return out


def _short(values: list[str], n: int = 8) -> str:
    return ", ".join(values[:n]) + (f", ... ({len(values)} values)" if len(values) > n else "")


def _share(value: float | None) -> str | None:
    return None if value is None else f"{value:.2%}"
