"""The runs list (filters, paging, auto-refresh) and one run (DAG, steps, logs, outputs).

Example: ``GET /?status=running&pipeline=ctr`` and ``GET /runs/3f2a``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sluice.metadata.schema import RUN_STATUSES
from sluice.ui.files import OutsideRoot
from sluice.ui.graph_layout import Node, graph_svg
from sluice.ui.pages.common import config, int_param, not_found, render, secs
from sluice.ui.queries import (
    RunFilter, filter_choices, has_metric_points, list_runs, pipeline_summaries, run_graph,
)

PAGE_SIZE = 50
#: Artifact types that have their own page, and the label of the link to it.
EXPLORE = {"Statistics": "statistics", "Schema": "schema", "Anomalies": "anomalies", "TransformGraph": "transform",
           "ModelEvaluation": "evaluation", "Blessing": "blessing", "Model": "model", "PushedModel": "pushed model"}


def runs_page(request: Request) -> Response:
    """Runs, newest first: status, start, duration, who started them; filtered and paged in SQL."""
    qp = request.query_params
    f = RunFilter(pipeline=qp.get("pipeline", ""), status=qp.get("status", ""), user=qp.get("user", ""),
                  id_prefix=qp.get("id", "").strip())
    offset = int_param(request, "offset", 0)
    store = config(request).store
    with store.engine.connect() as conn:
        page = list_runs(conn, f, limit=PAGE_SIZE, offset=offset)
        choices = filter_choices(conn)
        summaries = pipeline_summaries(conn)
    live = any(r.status == "running" for r in page.runs) or any(p.last and p.last.status == "running"
                                                                for p in summaries)
    base = {k: v for k, v in (("pipeline", f.pipeline), ("status", f.status), ("user", f.user), ("id", f.id_prefix))
            if v}
    return render(request, "runs.html", title="Runs", page=page, filter=f, choices=choices, pipelines=summaries,
                  statuses=RUN_STATUSES, live=live, base=base, page_size=PAGE_SIZE)


def _log_tail(request: Request, log_path: str | None, lines: int = 200) -> str | None:
    if not log_path:
        return None
    try:
        text = config(request).logs.tail(log_path)
    except (OutsideRoot, OSError):
        return None
    return "\n".join(text.splitlines()[-lines:])


def run_page(request: Request) -> Response:
    """One run: its DAG by state, then each step's parameters, timings, log tail and outputs."""
    store = config(request).store
    try:
        run = store.run(request.path_params["run_id"])
    except KeyError as exc:
        raise not_found(str(exc.args[0])) from None
    with store.engine.connect() as conn:
        graph = run_graph(conn, run.id)
        has_metrics = has_metric_points(conn, run.id)
    nodes = [Node(str(e.id), e.step, e.status,
                  f"{e.status} {secs(e.duration)}" if e.duration is not None else e.status, f"#step-{e.id}")
             for e in graph.executions]
    dag = graph_svg(nodes, [(str(a), str(b)) for a, b in graph.edges], css="sl-graph sl-dag")
    steps: list[dict[str, Any]] = []
    explore: list[tuple[str, Any]] = []
    for e in graph.executions:
        outs = graph.outputs.get(e.id, [])
        for _key, art in outs:
            if art.type in EXPLORE:
                explore.append((EXPLORE[art.type], art))
        steps.append({"ex": e, "outputs": outs, "inputs": graph.inputs.get(e.id, []),
                      "params": json.dumps(e.parameters or {}, indent=2, sort_keys=True, default=str),
                      "log": _log_tail(request, e.log_path)})
    counts: dict[str, int] = {}
    for e in graph.executions:
        counts[e.status] = counts.get(e.status, 0) + 1
    return render(request, "run.html", title=f"run {run.id[:12]}", run=run, dag=dag, steps=steps, counts=counts,
                  explore=explore, has_metrics=has_metrics, live=run.status == "running",
                  params=json.dumps(run.params or {}, sort_keys=True, default=str))


def step_log(request: Request) -> Response:
    """The tail of a step's log as text (``?lines=N``, default 200); the run page polls it while live."""
    store = config(request).store
    exec_id = request.path_params["exec_id"]
    try:
        ex = store.execution(exec_id)
    except KeyError:
        raise not_found(f"no execution {exec_id}") from None
    if not ex.run_id.startswith(request.path_params["run_id"]):
        raise not_found(f"execution {exec_id} is not part of run {request.path_params['run_id']}")
    if not ex.log_path:
        return PlainTextResponse("", headers={"X-Step-Status": ex.status})
    try:
        text = config(request).logs.tail(ex.log_path)
    except OutsideRoot as exc:
        raise HTTPException(403, detail=str(exc)) from None
    except FileNotFoundError:
        text = ""
    lines = int_param(request, "lines", 200, 1, 5000)
    return PlainTextResponse("\n".join(text.splitlines()[-lines:]),
                             headers={"X-Step-Status": ex.status, "Cache-Control": "no-store"})
