"""Read-only SQL behind the web UI's pages: paged run lists, a run's DAG, artifacts by run.

Every list is paged with LIMIT/OFFSET and filtered in SQL, so a page costs the same with
10 runs or 10,000. Functions take an open connection (``store.engine.connect()``).

Example::

    with store.engine.connect() as conn:
        page = list_runs(conn, RunFilter(status="running"), limit=50)
        page.total, [r.id for r in page.runs]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sluice.metadata.queries import RUN_COLUMNS
from sluice.metadata.records import Artifact, Execution, Run
from sluice.metadata.schema import artifacts, events, executions, metrics, pipelines, runs


@dataclass(frozen=True)
class RunFilter:
    """What the runs page filters on; empty fields filter nothing."""

    pipeline: str = ""
    status: str = ""
    user: str = ""
    id_prefix: str = ""


@dataclass
class RunPage:
    """One page of runs, newest first, and how many match in all."""

    runs: list[Run]
    total: int
    offset: int
    limit: int


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_runs(conn: sa.Connection, f: RunFilter, limit: int = 50, offset: int = 0) -> RunPage:
    """A page of runs matching ``f``, newest first, with the total count of matches."""
    conds: list[Any] = []
    if f.pipeline:
        conds.append(pipelines.c.name == f.pipeline)
    if f.status:
        conds.append(runs.c.status == f.status)
    if f.user:
        conds.append(runs.c.user == f.user)
    if f.id_prefix:
        conds.append(runs.c.id.like(_like_prefix(f.id_prefix.lower()), escape="\\"))
    q = sa.select(*RUN_COLUMNS).join_from(runs, pipelines).where(*conds)
    q = q.order_by(runs.c.started_at.desc(), runs.c.id).limit(limit).offset(offset)
    total_q = sa.select(sa.func.count()).select_from(runs.join(pipelines)).where(*conds)
    return RunPage([Run.from_row(r) for r in conn.execute(q)], int(conn.scalar(total_q) or 0), offset, limit)


def filter_choices(conn: sa.Connection) -> dict[str, list[str]]:
    """Values for the filter menus: pipeline names and users (distinct, sorted; small tables)."""
    names = [r[0] for r in conn.execute(sa.select(pipelines.c.name).order_by(pipelines.c.name).limit(500))]
    users = [r[0] for r in conn.execute(sa.select(runs.c.user).distinct().order_by(runs.c.user).limit(200)) if r[0]]
    return {"pipelines": names, "users": users}


@dataclass(frozen=True)
class PipelineSummary:
    """A pipeline with its number of runs and its newest run."""

    name: str
    runs: int
    last: Run | None


def pipeline_summaries(conn: sa.Connection, limit: int = 50) -> list[PipelineSummary]:
    """Pipelines by name with run counts (one GROUP BY) and each one's newest run (an index lookup each)."""
    counts = conn.execute(sa.select(runs.c.pipeline_id, sa.func.count().label("n")).group_by(runs.c.pipeline_id)).all()
    by_id = {r.pipeline_id: int(r.n) for r in counts}
    out = []
    for p in conn.execute(sa.select(pipelines.c.id, pipelines.c.name).order_by(pipelines.c.name).limit(limit)):
        row = conn.execute(sa.select(*RUN_COLUMNS).join_from(runs, pipelines).where(runs.c.pipeline_id == p.id)
                           .order_by(runs.c.started_at.desc()).limit(1)).first()
        out.append(PipelineSummary(p.name, by_id.get(p.id, 0), Run.from_row(row) if row is not None else None))
    return out


@dataclass
class RunGraph:
    """A run's executions, the edges between them (producer -> consumer) and each one's outputs."""

    executions: list[Execution]
    edges: list[tuple[int, int]] = field(default_factory=list)
    outputs: dict[int, list[tuple[str, Artifact]]] = field(default_factory=dict)
    inputs: dict[int, list[tuple[str, Artifact]]] = field(default_factory=dict)


def run_graph(conn: sa.Connection, run_id: str) -> RunGraph:
    """Executions of a run and the DAG between them, from the recorded events.

    An edge joins the execution that output an artifact in this run (also a cached one, whose
    output event points at the reused artifact) to each execution of the run that read it.
    """
    exs = [Execution.from_row(r) for r in
           conn.execute(sa.select(executions).where(executions.c.run_id == run_id).order_by(executions.c.id))]
    graph = RunGraph(exs)
    if not exs:
        return graph
    ids = [e.id for e in exs]
    q = (sa.select(events.c.execution_id, events.c.kind, events.c.key, *artifacts.c)
         .join_from(events, artifacts, events.c.artifact_id == artifacts.c.id)
         .where(events.c.execution_id.in_(ids)).order_by(events.c.id))
    producer: dict[int, int] = {}
    reads: list[tuple[int, int]] = []
    for row in conn.execute(q):
        art = Artifact.from_row(row)
        if row.kind == "output":
            graph.outputs.setdefault(row.execution_id, []).append((row.key, art))
            producer[art.id] = row.execution_id
        else:
            graph.inputs.setdefault(row.execution_id, []).append((row.key, art))
            reads.append((art.id, row.execution_id))
    graph.edges = sorted({(producer[a], e) for a, e in reads if a in producer and producer[a] != e})
    return graph


def run_artifacts(conn: sa.Connection, run_id: str, type: str | None = None) -> list[Artifact]:
    """Artifacts a run output (cache reuses included), oldest first, optionally of one type.

    Two indexed lookups (the run's executions, then their output events) rather than one join,
    which SQLite would otherwise drive from the artifact type index across every run.
    """
    ids = [r[0] for r in conn.execute(sa.select(executions.c.id).where(executions.c.run_id == run_id))]
    if not ids:
        return []
    q = (sa.select(*artifacts.c)
         .join_from(events, artifacts, events.c.artifact_id == artifacts.c.id)
         .where(events.c.execution_id.in_(ids), events.c.kind == "output").order_by(artifacts.c.id))
    found = [Artifact.from_row(r) for r in conn.execute(q)]
    return [a for a in found if type is None or a.type == type]


def runs_of_artifact(conn: sa.Connection, artifact_id: int, limit: int = 20) -> list[str]:
    """Ids of runs that output the artifact (made it, or reused it from the cache), newest first."""
    q = (sa.select(executions.c.run_id)
         .join_from(events, executions, events.c.execution_id == executions.c.id)
         .where(events.c.artifact_id == artifact_id, events.c.kind == "output")
         .order_by(executions.c.id.desc()).limit(limit))
    return list(dict.fromkeys(r[0] for r in conn.execute(q)))


def metric_series(conn: sa.Connection, run_ids: list[str]) -> dict[str, dict[str, list[tuple[int, float | None]]]]:
    """``{run_id: {metric: [(step, value), ...]}}`` for the given runs (NULL is NaN)."""
    out: dict[str, dict[str, list[tuple[int, float | None]]]] = {r: {} for r in run_ids}
    if not run_ids:
        return out
    q = (sa.select(metrics.c.run_id, metrics.c.name, metrics.c.step, metrics.c.value)
         .where(metrics.c.run_id.in_(run_ids)).order_by(metrics.c.run_id, metrics.c.name, metrics.c.step, metrics.c.id))
    for row in conn.execute(q):
        out[row.run_id].setdefault(row.name, []).append((int(row.step), row.value))
    return out


def find_runs(conn: sa.Connection, ids: list[str]) -> list[Run]:
    """Runs by exact id or unique prefix, in the order given; unknown ids are left out."""
    found: list[Run] = []
    for rid in ids:
        row = conn.execute(sa.select(*RUN_COLUMNS).join_from(runs, pipelines).where(runs.c.id == rid)).first()
        if row is None:
            rows = conn.execute(sa.select(*RUN_COLUMNS).join_from(runs, pipelines)
                                .where(runs.c.id.like(_like_prefix(rid), escape="\\")).limit(2)).all()
            row = rows[0] if len(rows) == 1 else None
        if row is not None:
            found.append(Run.from_row(row))
    return found


def has_metric_points(conn: sa.Connection, run_id: str) -> bool:
    """Whether the run logged any metric point (uses the (run_id, name) index)."""
    return conn.execute(sa.select(metrics.c.id).where(metrics.c.run_id == run_id).limit(1)).first() is not None
