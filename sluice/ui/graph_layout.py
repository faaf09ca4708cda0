"""A layered (Sugiyama-style) layout of small DAGs, drawn as SVG: run DAGs and lineage graphs.

Nodes go in columns by longest path from a source (left to right), ordered in each column
by the mean position of their parents (two sweeps), so chains stay straight and crossings
few. Edges are Bézier curves with arrowheads. Pure Python, no script: the server sends SVG.

Example::

    svg = graph_svg([Node("a", "ExampleGen", "succeeded"), Node("b", "Trainer", "running")],
                    [("a", "b")])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sluice.render.html import Markup, esc

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 46, 44, 16, 8

#: Fill and border of a node by state (steps) or kind (lineage).
COLORS = {
    "succeeded": ("#dafbe1", "#1a7f37"), "cached": ("#ddf4ff", "#0969da"), "running": ("#fbefff", "#8250df"),
    "failed": ("#ffebe9", "#cf222e"), "skipped": ("#f6f8fa", "#8c959f"), "killed": ("#f6f8fa", "#8c959f"),
    "artifact": ("#fff8c5", "#9a6700"), "execution": ("#f6f8fa", "#57606a"), "root": ("#fff1e5", "#bc4c00"),
}


@dataclass(frozen=True)
class Node:
    """A box: ``state`` picks its colors (see :data:`COLORS`); ``href`` makes it a link."""

    id: str
    label: str
    state: str = "execution"
    detail: str = ""
    href: str = ""


def layers(node_ids: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Column and row of each node: column = longest path from a source; rows by parent barycenter.

    Example::

        layers(["a", "b", "c"], [("a", "b"), ("a", "c")])   # {'a': (0, 0), 'b': (1, 0), 'c': (1, 1)}
    """
    known = set(node_ids)
    parents: dict[str, list[str]] = {n: [] for n in node_ids}
    children: dict[str, list[str]] = {n: [] for n in node_ids}
    for a, b in edges:
        if a in known and b in known and a != b:
            parents[b].append(a)
            children[a].append(b)
    # Kahn's order; nodes left over (a cycle, which a DAG never has) go last.
    indeg = {n: len(parents[n]) for n in node_ids}
    queue = [n for n in node_ids if indeg[n] == 0]
    order: list[str] = []
    while queue:
        n = queue.pop(0)
        order.append(n)
        for c in children[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    order += [n for n in node_ids if n not in set(order)]
    col: dict[str, int] = {}
    for n in order:
        col[n] = max((col[p] + 1 for p in parents[n] if p in col), default=0)
    columns: dict[int, list[str]] = {}
    for n in order:
        columns.setdefault(col[n], []).append(n)
    row: dict[str, float] = {}
    for c in sorted(columns):
        for i, n in enumerate(columns[c]):
            row[n] = i
    for _ in range(2):  # barycenter sweeps: order each column by the mean row of its parents
        for c in sorted(columns)[1:]:
            columns[c].sort(key=lambda n: (sum(row[p] for p in parents[n]) / len(parents[n])) if parents[n] else row[n])
            for i, n in enumerate(columns[c]):
                row[n] = i
    return {n: (col[n], int(row[n])) for n in node_ids}


def graph_svg(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], *, css: str = "sl-graph",
              vertical: bool = False) -> Markup:
    """The graph as an SVG element sized to fit (large graphs scroll in their container).

    Layers run left to right, or top to bottom with ``vertical=True`` (long chains such as
    lineage read better downwards).

    Example::

        graph_svg([Node("1", "ExampleGen", "succeeded", "2.1s")], [])
    """
    if not nodes:
        return Markup('<p class="sl-muted">nothing to draw</p>')
    pos = layers([n.id for n in nodes], edges)
    ncols = max(c for c, _ in pos.values()) + 1
    nrows = max(r for _, r in pos.values()) + 1
    gap_y = GAP_X if vertical else GAP_Y
    if vertical:
        ncols, nrows = nrows, ncols
    width = PAD * 2 + ncols * NODE_W + (ncols - 1) * GAP_X
    height = PAD * 2 + nrows * NODE_H + (nrows - 1) * gap_y

    def xy(node_id: str) -> tuple[float, float]:
        c, r = pos[node_id]
        if vertical:
            c, r = r, c
        return PAD + c * (NODE_W + GAP_X), PAD + r * (NODE_H + gap_y)

    parts = [f'<svg class="{esc(css)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="system-ui,sans-serif">',
             '<defs><marker id="sl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8c959f"/></marker></defs>']
    ids = {n.id for n in nodes}
    for a, b in edges:
        if a not in ids or b not in ids:
            continue
        (x1, y1), (x2, y2) = xy(a), xy(b)
        if vertical:
            x1, y1, x2, y2 = x1 + NODE_W / 2, y1 + NODE_H, x2 + NODE_W / 2, y2
            mid = (y1 + y2) / 2
            d = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2 - 2:.0f}"
        else:
            x1, y1, x2, y2 = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
            mid = (x1 + x2) / 2
            d = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2 - 2:.0f},{y2:.0f}"
        parts.append(f'<path class="sl-edge" data-from="{esc(a)}" data-to="{esc(b)}" d="{d}" '
                     'fill="none" stroke="#8c959f" stroke-width="1.5" marker-end="url(#sl-arrow)"/>')
    for n in nodes:
        x, y = xy(n.id)
        fill, stroke = COLORS.get(n.state, COLORS["execution"])
        label = n.label if len(n.label) <= 24 else n.label[:23] + "…"
        detail = n.detail if len(n.detail) <= 30 else n.detail[:29] + "…"
        box = (f'<g class="sl-node sl-node-{esc(n.state)}" data-id="{esc(n.id)}" data-state="{esc(n.state)}">'
               f'<title>{esc(n.label)} ({esc(n.state)}) {esc(n.detail)}</title>'
               f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}" '
               f'stroke-width="{2 if n.state in ("running", "failed", "root") else 1.2}"/>'
               f'<text x="{x + 8}" y="{y + 19}" font-size="13" font-weight="600" fill="#1f2328">{esc(label)}</text>'
               f'<text x="{x + 8}" y="{y + 36}" font-size="11" fill="{stroke}">{esc(detail)}</text></g>')
        parts.append(f'<a href="{esc(n.href)}">{box}</a>' if n.href else box)
    parts.append("</svg>")
    return Markup("".join(parts))
