"""Training curves (one run, or several overlaid) and the run comparison view.

Example: ``GET /training?run=3f2a&run=9c1d`` and ``GET /compare?run=3f2a&run=9c1d``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluice.metadata.records import Run
from sluice.render.html import fmt
from sluice.ui.pages.common import config, render, secs
from sluice.ui.queries import find_runs, metric_series, run_graph

MAX_RUNS = 12
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
           "#eeca3b", "#2f4b7c", "#a05195"]


def _selected(request: Request) -> list[str]:
    ids: list[str] = []
    for value in request.query_params.getlist("run"):
        ids += [v.strip() for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(ids))[:MAX_RUNS]


def run_label(run: Run, keys: list[str] | None = None) -> str:
    """Short run name for legends: id prefix plus the pipeline parameters in ``keys`` (default: all)."""
    items = sorted((run.params or {}).items())
    params = ", ".join(f"{k}={v}" for k, v in items if keys is None or k in keys)
    return f"{run.id[:8]}" + (f" ({params})" if params else "")


def differing_params(runs: list[Run]) -> list[str]:
    """Parameter names whose values differ between the runs (what tells their curves apart)."""
    keys = sorted({k for r in runs for k in (r.params or {})})
    return [k for k in keys if len({json.dumps((r.params or {}).get(k), default=str) for r in runs}) > 1]


def curve_figures(runs: list[Run], series: dict[str, dict[str, list[tuple[int, float | None]]]]) -> list[dict[str, Any]]:
    """One Plotly figure per metric name, one line per run (NaN points left as gaps)."""
    names = sorted({name for r in runs for name in series.get(r.id, {})})
    keys = differing_params(runs)
    last = max((p[-1][0] for r in runs for p in series.get(r.id, {}).values() if p), default=0)
    xaxis: dict[str, Any] = {"title": {"text": "step"}}
    if last <= 20:
        xaxis["dtick"] = 1  # epochs: whole steps only
    figures = []
    for name in names:
        traces = []
        for i, run in enumerate(runs):
            points = series.get(run.id, {}).get(name)
            if not points:
                continue
            traces.append({"type": "scatter", "mode": "lines+markers", "name": run_label(run, keys),
                           "x": [s for s, _ in points],
                           "y": [None if v is None or math.isnan(v) else v for _, v in points],
                           "line": {"color": PALETTE[i % len(PALETTE)]}})
        figures.append({"metric": name, "figure": {
            "data": traces,
            "layout": {"title": {"text": name, "font": {"size": 14}}, "height": 300, "showlegend": True,
                       "margin": {"l": 50, "r": 10, "t": 36, "b": 40}, "xaxis": xaxis,
                       "legend": {"orientation": "h", "y": -0.3, "yanchor": "top"}}}})
    return figures


def training_page(request: Request) -> Response:
    """Loss and metric curves over steps for the selected runs, overlaid."""
    store = config(request).store
    with store.engine.connect() as conn:
        runs = find_runs(conn, _selected(request))
        series = metric_series(conn, [r.id for r in runs])
    return render(request, "training.html", title="Training curves", runs=runs,
                  figures=curve_figures(runs, series), missing=[i for i in _selected(request)
                                                                if not any(r.id.startswith(i) for r in runs)])


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return fmt(value) if isinstance(value, (int, float)) else (value if isinstance(value, str)
                                                                 else json.dumps(value, default=str))


def compare_rows(values: list[dict[str, Any]], only_different: bool = False) -> list[dict[str, Any]]:
    """Rows ``{"key", "cells", "differs"}`` over the union of keys; ``differs`` when the runs disagree."""
    keys = sorted({k for v in values for k in v})
    rows = []
    for key in keys:
        cells = [_show(v.get(key)) for v in values]
        differs = len(set(cells)) > 1
        if differs or not only_different:
            rows.append({"key": key, "cells": cells, "differs": differs})
    return rows


def compare_page(request: Request) -> Response:
    """Selected runs side by side: parameters, step settings that differ, final metrics, curves."""
    store = config(request).store
    with store.engine.connect() as conn:
        runs = find_runs(conn, _selected(request))
        series = metric_series(conn, [r.id for r in runs])
        step_params: list[dict[str, Any]] = []
        finals: list[dict[str, Any]] = []
        for run in runs:
            flat: dict[str, Any] = {}
            graph = run_graph(conn, run.id)
            for e in graph.executions:
                _flat(e.step, e.parameters or {}, flat)
            step_params.append(flat)
            final = {f"{name} (last)": points[-1][1] for name, points in series[run.id].items() if points}
            for outs in graph.outputs.values():
                for _key, art in outs:
                    if art.type == "ModelEvaluation":
                        for k, v in ((art.properties or {}).get("metrics") or {}).items():
                            final[f"evaluation {k}"] = v
                    elif art.type == "Blessing":
                        final["blessed"] = (art.properties or {}).get("blessed")
            finals.append(final)
    info = [{"key": k, "cells": c, "differs": len(set(c)) > 1} for k, c in (
        ("pipeline", [r.pipeline for r in runs]), ("status", [r.status for r in runs]),
        ("duration", [secs(r.duration) for r in runs]), ("engine", [r.engine or "" for r in runs]))]
    params = compare_rows([r.params or {} for r in runs])
    return render(request, "compare.html", title="Compare runs", runs=runs, info=info, params=params,
                  steps=compare_rows(step_params, only_different=True), finals=compare_rows(finals),
                  figures=curve_figures(runs, series))
