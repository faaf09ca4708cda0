"""Rich renderings of metadata for the CLI: run lists, run details, artifacts, lineage trees."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from sluice.errors import SluiceError
from sluice.runner.progress import STATE_STYLE


def _when(dt: Any) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, '')}]{state}[/]"


def runs_table(runs: list[Any]) -> Table:
    """A table of runs, newest first."""
    table = Table(title="runs", title_justify="left")
    for col in ("run", "pipeline", "status", "started", "duration", "engine", "user"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.id[:12], r.pipeline, _state(r.status), _when(r.started_at), _secs(r.duration),
                      r.engine or "", r.user or "")
    return table


def show_ref(console: Console, store: Any, ref: str) -> None:
    """Print a run (id or prefix) or an artifact (number; ``#N`` is always an artifact).

    A bare number that is no artifact is tried as a run id prefix: run ids are hex,
    so the 12-character prefix ``sluice runs`` prints can be all digits.
    """
    number = ref[1:] if ref.startswith("#") else ref
    if number.isdigit():
        try:
            art = store.artifact(int(number))
        except KeyError:
            art = None
        if art is not None:
            console.print(artifact_view(store, art))
            return
        if ref.startswith("#"):
            raise SluiceError(f"no artifact {ref}; `sluice show RUN_ID` lists a run's artifacts")
    try:
        run = store.run(ref)
    except KeyError as exc:
        hint = "no artifact with that number either; " if number.isdigit() else ""
        raise SluiceError(f"{exc.args[0]} ({hint}`sluice runs` lists runs)") from None
    console.print(run_view(store, run))


def run_view(store: Any, run: Any) -> Group:
    """A run's header plus one row per step with its outputs."""
    header = (f"[bold]run {run.id}[/] of [bold]{run.pipeline}[/]: {_state(run.status)}  "
              f"started {_when(run.started_at)}, {_secs(run.duration)} on {run.engine} by {run.user}@{run.host}")
    params = f"params: {json.dumps(run.params or {})}"
    table = Table(title_justify="left")
    for col in ("step", "state", "time", "outputs", "log / error"):
        table.add_column(col, overflow="fold")
    for ex in store.executions(run.id):
        outs = "\n".join(f"#{a.id} {k}: {a.type}" for k, a in store.outputs_of(ex.id).items())
        note = ex.error or (f"reused execution {ex.cached_from}" if ex.cached_from else ex.log_path or "")
        table.add_row(ex.step, _state(ex.status), _secs(ex.duration), outs, note)
    parts: list[Any] = [header, params, table]
    if run.error:
        parts.append(f"[red]error:[/] {run.error}")
    return Group(*parts)


def artifact_view(store: Any, art: Any) -> Table:
    """An artifact's type, location, fingerprint, properties and producer."""
    table = Table(show_header=False, title=f"artifact #{art.id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("type", art.type)
    table.add_row("output", art.name)
    table.add_row("uri", art.uri)
    table.add_row("state", art.state)
    table.add_row("fingerprint", art.fingerprint or "")
    table.add_row("created", _when(art.created_at))
    if art.producer_id is not None:
        ex = store.execution(art.producer_id)
        table.add_row("made by", f"step {ex.step} (execution {ex.id}) of run {ex.run_id}")
    for key, value in (art.properties or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        table.add_row(key, text if len(text) < 400 else text[:400] + " ...")
    return table


def lineage_tree(store: Any, artifact_id: int, direction: str = "both") -> Group:
    """Trees of what an artifact came from (up) and what was made from it (down)."""
    parts: list[Any] = []
    for d in (["up", "down"] if direction == "both" else [direction]):
        try:
            graph = store.lineage(artifact_id, direction=d)
        except KeyError:
            raise SluiceError(f"no artifact #{artifact_id}") from None
        root = graph.artifacts.get(artifact_id)
        if root is None:
            raise SluiceError(f"no artifact #{artifact_id}")
        title = "made from" if d == "up" else "used by"
        tree = Tree(f"[bold]{_art_label(root)}[/] [dim]({title})[/]")
        _grow(tree, graph, artifact_id, d, set())
        parts.append(tree)
    return Group(*parts)


def _art_label(a: Any) -> str:
    return f"#{a.id} {a.type} ({a.name}) {a.uri}"


def _grow(tree: Tree, graph: Any, artifact_id: int, direction: str, seen: set[int]) -> None:
    """Add the executions next to an artifact (its producer going up, its consumers going
    down) and, under each, the artifacts on the far side; recursively."""
    if artifact_id in seen:
        return
    seen.add(artifact_id)
    near, far = ("output", "input") if direction == "up" else ("input", "output")
    executions = sorted({e.execution_id for e in graph.edges if e.artifact_id == artifact_id and e.kind == near})
    for ex_id in executions[:1] if direction == "up" else executions:
        ex = graph.executions[ex_id]
        branch = tree.add(f"{ex.step} [dim](execution {ex.id}, run {ex.run_id}, {ex.status})[/]")
        for e in graph.edges:
            if e.execution_id == ex_id and e.kind == far and e.artifact_id in graph.artifacts:
                node = branch.add(f"{e.key}: {_art_label(graph.artifacts[e.artifact_id])}")
                _grow(node, graph, e.artifact_id, direction, seen)


def _cell(value: Any) -> str:
    """A parameter or metric value as a table cell: floats to 6 significant digits, the rest as JSON."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def resolve_runs(store: Any, refs: list[str] | tuple[str, ...]) -> list[Any]:
    """The runs named by ids or unique prefixes, in the order given; a SluiceError names a bad one."""
    found = []
    for ref in refs:
        try:
            found.append(store.run(ref))
        except KeyError as exc:
            raise SluiceError(f"run {ref!r}: {exc.args[0]} (`sluice runs` lists runs)") from None
    return found


def final_metrics(store: Any, run_id: str) -> dict[str, float]:
    """The final value (last step, last recorded) of every metric series of a run."""
    last: dict[str, Any] = {}
    for m in store.metrics(run_id):  # ordered by name, step, id: the last one wins
        last[m.name] = m.value
    return last


def compare_rows(store: Any, runs: list[Any]) -> list[tuple[str, list[str], bool]]:
    """``(field, [cell per run], differs)`` rows comparing runs: pipeline, status, each parameter
    (``param.NAME``) and the final value of each metric (``metric.NAME``); ``-`` where a run lacks one."""
    rows: list[tuple[str, list[str], bool]] = []

    def add(field: str, cells: list[str]) -> None:
        rows.append((field, cells, len(set(cells)) > 1))

    add("pipeline", [r.pipeline for r in runs])
    add("status", [r.status for r in runs])
    params = [r.params or {} for r in runs]
    for key in sorted({k for p in params for k in p}):
        add(f"param.{key}", [_cell(p.get(key)) for p in params])
    metrics = [final_metrics(store, r.id) for r in runs]
    for key in sorted({k for m in metrics for k in m}):
        add(f"metric.{key}", [_cell(m.get(key)) for m in metrics])
    return rows


def compare_table(store: Any, refs: list[str] | tuple[str, ...], only_differences: bool = False) -> Table:
    """Runs side by side: pipeline, status, parameters and final metric values; differing rows
    are bold yellow with ``*`` in the ``differs`` column.

    Example::

        console.print(compare_table(store, ["3f2a", "9c01"], only_differences=True))
    """
    if len(refs) < 2:
        raise SluiceError(f"compare needs at least two runs, got {len(refs)}")
    runs = resolve_runs(store, refs)
    table = Table(title=f"comparing {len(runs)} runs", title_justify="left")
    table.add_column("field", style="bold")
    for r in runs:
        table.add_column(r.id[:12], overflow="fold")
    table.add_column("differs")
    for field, cells, differs in compare_rows(store, runs):
        if only_differences and not differs:
            continue
        shown = [f"[bold yellow]{escape(c)}[/]" if differs else escape(c) for c in cells]
        table.add_row(field, *shown, "*" if differs else "")
    return table
