"""Lineage of an artifact drawn as a graph: upstream (what made it) and downstream (what it made).

Example: ``GET /lineage/11?direction=up&depth=6``.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from sluice.metadata.lineage import DIRECTIONS
from sluice.ui.graph_layout import Node, graph_svg
from sluice.ui.pages.common import config, int_param, not_found, render

MAX_NODES = 300


def lineage_page(request: Request) -> Response:
    """The lineage graph around one artifact; artifacts link to their own lineage and page."""
    store = config(request).store
    artifact_id = request.path_params["artifact_id"]
    direction = request.query_params.get("direction", "both")
    if direction not in DIRECTIONS:
        raise HTTPException(400, detail=f"direction must be one of {', '.join(DIRECTIONS)}")
    depth = int_param(request, "depth", 20, 1, 100)
    try:
        graph = store.lineage(artifact_id, direction, depth)
    except KeyError:
        raise not_found(f"no artifact #{artifact_id}") from None
    if artifact_id not in graph.artifacts:
        raise not_found(f"no artifact #{artifact_id}")
    arts = sorted(graph.artifacts.values(), key=lambda a: (a.id != artifact_id, a.id))
    execs = sorted(graph.executions.values(), key=lambda e: e.id)
    truncated = len(arts) + len(execs) > MAX_NODES
    if truncated:  # keep the nearest ids around the root: a readable graph beats a complete one
        arts, execs = arts[: MAX_NODES // 2], execs[: MAX_NODES // 2]
    keep_a, keep_e = {a.id for a in arts}, {e.id for e in execs}
    nodes = [Node(f"a{a.id}", f"#{a.id} {a.type}", "root" if a.id == artifact_id else "artifact",
                  str((a.properties or {}).get("summary") or a.name), f"/lineage/{a.id}?direction={direction}")
             for a in arts]
    nodes += [Node(f"e{e.id}", e.step, e.status, f"run {e.run_id[:8]} · {e.status}", f"/runs/{e.run_id}#step-{e.id}")
              for e in execs]
    edges = []
    for edge in graph.edges:
        if edge.artifact_id in keep_a and edge.execution_id in keep_e:
            a, e = f"a{edge.artifact_id}", f"e{edge.execution_id}"
            edges.append((a, e) if edge.kind == "input" else (e, a))
    root = graph.artifacts[artifact_id]
    return render(request, "lineage.html", title=f"lineage of #{artifact_id}", root=root, direction=direction,
                  depth=depth, svg=graph_svg(nodes, sorted(set(edges)), css="sl-graph sl-lineage", vertical=True), arts=arts,
                  execs=execs, truncated=truncated, directions=DIRECTIONS)
