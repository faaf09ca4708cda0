"""Read queries behind :class:`~sluice.metadata.MetadataStore`: runs, artifacts, the cache.

Functions take an open connection so the store decides transactions and
retries; each builds one or two portable SQL statements.

Example::

    with store.engine.connect() as conn:
        hit = find_cached(conn, fingerprint)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from sluice.metadata.records import Artifact, CachedExecution, Execution, Run
from sluice.metadata.schema import artifacts, events, executions, pipelines, runs
from sluice.spans import span_sort_key

RUN_COLUMNS = [*(c for c in runs.c if c.name != "pipeline_id"), pipelines.c.name.label("pipeline")]


def list_runs(conn: sa.Connection, pipeline: str | None, limit: int) -> list[Run]:
    """Newest runs first, optionally of one pipeline."""
    q = sa.select(*RUN_COLUMNS).join_from(runs, pipelines).order_by(runs.c.started_at.desc(), runs.c.id)
    if pipeline is not None:
        q = q.where(pipelines.c.name == pipeline)
    return [Run.from_row(r) for r in conn.execute(q.limit(limit))]


def find_run(conn: sa.Connection, run_id: str) -> Run:
    """A run by exact id, else by unique prefix; KeyError when missing or ambiguous."""
    base = sa.select(*RUN_COLUMNS).join_from(runs, pipelines)
    row = conn.execute(base.where(runs.c.id == run_id)).first()
    if row is not None:
        return Run.from_row(row)
    escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(base.where(runs.c.id.like(f"{escaped}%", escape="\\")).limit(2)).all()
    if not rows:
        raise KeyError(f"no run with id or prefix {run_id!r}")
    if len(rows) > 1:
        raise KeyError(f"run id prefix {run_id!r} is ambiguous; give more characters")
    return Run.from_row(rows[0])


def list_artifacts(conn: sa.Connection, type: str | None, run_id: str | None) -> list[Artifact]:
    """Artifacts by id; ``run_id`` keeps those the run output (its cache reuses included)."""
    q = sa.select(artifacts).order_by(artifacts.c.id)
    if type is not None:
        q = q.where(artifacts.c.type == type)
    if run_id is not None:
        outputs = (
            sa.select(events.c.artifact_id)
            .join_from(events, executions, events.c.execution_id == executions.c.id)
            .where(executions.c.run_id == run_id, events.c.kind == "output")
        )
        q = q.where(artifacts.c.id.in_(outputs))
    return [Artifact.from_row(r) for r in conn.execute(q)]


def linked_artifacts(conn: sa.Connection, exec_id: int, kind: str) -> dict[str, Artifact]:
    """An execution's input or output artifacts by event key."""
    q = (
        sa.select(events.c.key, *artifacts.c)
        .join_from(events, artifacts, events.c.artifact_id == artifacts.c.id)
        .where(events.c.execution_id == exec_id, events.c.kind == kind)
        .order_by(events.c.id)
    )
    return {row.key: Artifact.from_row(row) for row in conn.execute(q)}


def find_cached(conn: sa.Connection, fingerprint: str) -> CachedExecution | None:
    """Latest ``succeeded`` execution with the fingerprint and no output that is not live."""
    not_live = (
        sa.select(events.c.id)
        .join_from(events, artifacts, events.c.artifact_id == artifacts.c.id)
        .where(events.c.execution_id == executions.c.id, events.c.kind == "output", artifacts.c.state != "live")
    )
    q = (
        sa.select(executions)
        .where(executions.c.fingerprint == fingerprint, executions.c.status == "succeeded", ~not_live.exists())
        .order_by(executions.c.id.desc())
        .limit(1)
    )
    row = conn.execute(q).first()
    if row is None:
        return None
    return CachedExecution(Execution.from_row(row), linked_artifacts(conn, row.id, "output"))


def _outputs_of_pipeline(type: str, pipeline: str) -> sa.Select:
    """Live artifacts of ``type`` output by runs of ``pipeline``, newest output event first
    (a cache reuse counts as recent)."""
    return (
        sa.select(*artifacts.c)
        .join_from(events, artifacts, events.c.artifact_id == artifacts.c.id)
        .join(executions, events.c.execution_id == executions.c.id)
        .join(runs, executions.c.run_id == runs.c.id)
        .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
        .where(artifacts.c.type == type, pipelines.c.name == pipeline, events.c.kind == "output")
        .where(artifacts.c.state == "live")
        .order_by(events.c.id.desc())
    )


def latest_artifact(
    conn: sa.Connection,
    type: str,
    pipeline: str,
    name: str | None,
    where: Callable[[dict[str, Any]], bool] | None,
) -> Artifact | None:
    """Newest live artifact of ``type`` output by a run of ``pipeline`` that ``where`` accepts."""
    q = _outputs_of_pipeline(type, pipeline)
    if name is not None:
        q = q.where(artifacts.c.name == name)
    # Stream newest first and stop at the first match: never load the whole history.
    for row in conn.execute(q.execution_options(yield_per=256)):
        if where is None or where(dict(row.properties or {})):
            return Artifact.from_row(row)
    return None


def previous_span_artifact(conn: sa.Connection, type: str, pipeline: str, step: str, span: str) -> Artifact | None:
    """The live artifact of ``type`` output by ``step`` in a run of ``pipeline`` (run or reused from
    cache) whose ``span`` property is the greatest below ``span``; the latest one among equal spans."""
    q = _outputs_of_pipeline(type, pipeline).where(executions.c.step == step,
                                                   executions.c.status.in_(("succeeded", "cached")))
    # Properties are JSON (text in SQLite, json in PostgreSQL): spans are compared in Python, so no
    # dialect-specific JSON operator is needed. A step has one output per distinct input: few rows.
    latest: dict[str, Artifact] = {}  # span -> its latest artifact (rows come newest first)
    for row in conn.execute(q):
        value = (row.properties or {}).get("span")
        if value is not None:
            latest.setdefault(str(value), Artifact.from_row(row))
    key = span_sort_key([span, *latest])
    earlier = [s for s in latest if key(s) < key(span)]
    return latest[max(earlier, key=key)] if earlier else None
