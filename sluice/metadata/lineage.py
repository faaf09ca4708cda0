"""Lineage: which executions and artifacts lead to, or follow from, an artifact.

Upstream of an artifact is the execution that produced it, that execution's
inputs, their producers, and so on. Downstream is every execution that
consumed it, their outputs, and so on. Both walk breadth first one level at a
time with a couple of batched ``IN (...)`` queries per level, never one query
per node.

Upstream follows the *producer* (the execution that actually wrote the files),
so "which data made this model" names the data the model was trained on, even
when later runs reused the model from the cache. Downstream follows input
events, so it includes cached executions that consumed an artifact.

Example::

    graph = store.lineage(model.id, direction="up")
    [a.uri for a in graph.of_type("Examples")]     # the data that made this model
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from sluice.metadata.records import Artifact, Execution, Record
from sluice.metadata.schema import artifacts, events, executions

DIRECTIONS = ("up", "down", "both")
_CHUNK = 500  # ids per IN (...) list: well under every backend's bound-parameter limit


def chunks(ids: Iterable[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    """Split ids into lists small enough for one ``IN (...)``."""
    batch: list[Any] = []
    for i in ids:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class LineageEdge(Record):
    """An event: ``input`` is artifact -> execution, ``output`` is execution -> artifact."""

    execution_id: int
    artifact_id: int
    kind: str
    key: str


@dataclass
class LineageGraph(Record):
    """Artifacts and executions reachable from ``root`` (an artifact id), and the edges between them."""

    root: int
    direction: str
    artifacts: dict[int, Artifact] = field(default_factory=dict)
    executions: dict[int, Execution] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)

    def of_type(self, type: str) -> list[Artifact]:
        """Artifacts of one type, oldest first: ``graph.of_type("Examples")``."""
        return sorted((a for a in self.artifacts.values() if a.type == type), key=lambda a: a.id)

    def to_dict(self) -> dict[str, Any]:
        """Nodes and edges as lists, ready for ``json.dumps`` or a graph view."""
        return {
            "root": self.root,
            "direction": self.direction,
            "artifacts": [a.to_dict() for a in sorted(self.artifacts.values(), key=lambda a: a.id)],
            "executions": [e.to_dict() for e in sorted(self.executions.values(), key=lambda e: e.id)],
            "edges": [e.to_dict() for e in self.edges],
        }

    def _add_edge(self, edge: LineageEdge, seen: set[LineageEdge]) -> None:
        if edge not in seen:
            seen.add(edge)
            self.edges.append(edge)


def _artifact_rows(conn: sa.Connection, ids: Iterable[int]) -> dict[int, Artifact]:
    out: dict[int, Artifact] = {}
    for batch in chunks(ids):
        for row in conn.execute(sa.select(artifacts).where(artifacts.c.id.in_(batch))):
            out[row.id] = Artifact.from_row(row)
    return out


def _execution_rows(conn: sa.Connection, ids: Iterable[int]) -> dict[int, Execution]:
    out: dict[int, Execution] = {}
    for batch in chunks(ids):
        for row in conn.execute(sa.select(executions).where(executions.c.id.in_(batch))):
            out[row.id] = Execution.from_row(row)
    return out


def _events_with_artifacts(conn: sa.Connection, exec_ids: Iterable[int], kind: str) -> list[Any]:
    """Events of ``kind`` of these executions, each row also carrying its artifact's columns."""
    rows: list[Any] = []
    cols = [events.c.execution_id, events.c.kind, events.c.key, *artifacts.c]
    for batch in chunks(exec_ids):
        q = (
            sa.select(*cols)
            .join_from(events, artifacts, events.c.artifact_id == artifacts.c.id)
            .where(events.c.execution_id.in_(batch), events.c.kind == kind)
            .order_by(events.c.id)
        )
        rows.extend(conn.execute(q))
    return rows


def _walk_up(conn: sa.Connection, graph: LineageGraph, depth: int | None, seen: set[LineageEdge]) -> None:
    frontier = {graph.root}
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        producers: set[int] = set()
        orphans = []  # artifacts with no producer column: fall back to their output events
        for aid in frontier:
            art = graph.artifacts[aid]
            if art.producer_id is None:
                orphans.append(aid)
            else:
                producers.add(art.producer_id)
                graph._add_edge(LineageEdge(art.producer_id, aid, "output", art.name), seen)
        for batch in chunks(orphans):
            q = sa.select(events.c.execution_id, events.c.artifact_id, events.c.key).where(
                events.c.artifact_id.in_(batch), events.c.kind == "output"
            )
            for row in conn.execute(q):
                producers.add(row.execution_id)
                graph._add_edge(LineageEdge(row.execution_id, row.artifact_id, "output", row.key), seen)
        new_execs = producers - graph.executions.keys()
        graph.executions.update(_execution_rows(conn, new_execs))
        frontier = set()
        for row in _events_with_artifacts(conn, new_execs, "input"):
            graph._add_edge(LineageEdge(row.execution_id, row.id, "input", row.key), seen)
            if row.id not in graph.artifacts:
                graph.artifacts[row.id] = Artifact.from_row(row)
                frontier.add(row.id)


def _walk_down(conn: sa.Connection, graph: LineageGraph, depth: int | None, seen: set[LineageEdge]) -> None:
    frontier = {graph.root}
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        consumers: set[int] = set()
        cols = [events.c.artifact_id, events.c.kind, events.c.key, *executions.c]
        for batch in chunks(frontier):
            q = (
                sa.select(*cols)
                .join_from(events, executions, events.c.execution_id == executions.c.id)
                .where(events.c.artifact_id.in_(batch), events.c.kind == "input")
            )
            for row in conn.execute(q):
                graph._add_edge(LineageEdge(row.id, row.artifact_id, "input", row.key), seen)
                if row.id not in graph.executions:
                    graph.executions[row.id] = Execution.from_row(row)
                    consumers.add(row.id)
        frontier = set()
        for row in _events_with_artifacts(conn, consumers, "output"):
            graph._add_edge(LineageEdge(row.execution_id, row.id, "output", row.key), seen)
            if row.id not in graph.artifacts:
                graph.artifacts[row.id] = Artifact.from_row(row)
                frontier.add(row.id)


def build_lineage(conn: sa.Connection, artifact_id: int, direction: str = "up", depth: int | None = None) -> LineageGraph:
    """The lineage graph of one artifact; ``depth`` counts execution hops (None: all).

    Raises KeyError when the artifact does not exist.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"invalid direction {direction!r}; expected one of: {', '.join(DIRECTIONS)}")
    root = _artifact_rows(conn, [artifact_id])
    if not root:
        raise KeyError(f"no artifact with id {artifact_id}")
    graph = LineageGraph(root=artifact_id, direction=direction, artifacts=dict(root))
    seen: set[LineageEdge] = set()
    if direction in ("up", "both"):
        _walk_up(conn, graph, depth, seen)
    if direction in ("down", "both"):
        _walk_down(conn, graph, depth, seen)
    return graph


def upstream_closure(conn: sa.Connection, roots: Iterable[int]) -> set[int]:
    """Ids of ``roots`` and every artifact upstream of them (ids only; used by GC).

    Example::

        upstream_closure(conn, [pushed_model_id])   # {pushed, model, transformed, examples, ...}
    """
    seen = set(roots)
    frontier = set(seen)
    seen_execs: set[int] = set()
    while frontier:
        producers: set[int] = set()
        for batch in chunks(frontier):
            q = sa.select(artifacts.c.producer_id).where(
                artifacts.c.id.in_(batch), artifacts.c.producer_id.is_not(None)
            )
            producers.update(conn.scalars(q))
            # artifacts registered without a producer column still have output events
            q = sa.select(events.c.execution_id).where(events.c.artifact_id.in_(batch), events.c.kind == "output")
            orphans = sa.select(artifacts.c.id).where(artifacts.c.id.in_(batch), artifacts.c.producer_id.is_(None))
            producers.update(conn.scalars(q.where(events.c.artifact_id.in_(orphans))))
        new_execs = producers - seen_execs
        seen_execs |= new_execs
        inputs: set[int] = set()
        for batch in chunks(new_execs):
            q = sa.select(events.c.artifact_id).where(events.c.execution_id.in_(batch), events.c.kind == "input")
            inputs.update(conn.scalars(q))
        frontier = inputs - seen
        seen |= frontier
    return seen
