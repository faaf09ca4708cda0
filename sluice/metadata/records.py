"""Plain, immutable rows returned by the metadata store.

Each record is a frozen dataclass built from one database row, so callers never
hold a live database object; ``to_dict()`` gives a JSON-ready dict (timestamps
as ISO 8601 strings) for the CLI, the web UI and ``--json`` output.

Example::

    run = store.run("3f2a")
    run.status, run.duration
    # ('succeeded', 12.5)
    json.dumps(run.to_dict())
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Record:
    """Base of the row records: adds ``to_dict()`` and ``from_row()``."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict: ``json.dumps(run.to_dict())``."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_row(cls, row: Any, **extra: Any) -> Any:
        """Build the record from a SQLAlchemy row whose column labels match field names."""
        data = dict(row._mapping)
        data.update(extra)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


@dataclass(frozen=True)
class Run(Record):
    """One run of a pipeline."""

    id: str
    pipeline: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    params: dict[str, Any] | None = None
    engine: str | None = None
    user: str | None = None
    host: str | None = None
    pid: int | None = None
    error: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while running."""
        return _seconds(self.started_at, self.ended_at)


@dataclass(frozen=True)
class Execution(Record):
    """One step of a run; ``cached_from`` is the execution whose outputs it reused."""

    id: int
    run_id: str
    step: str
    component: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    fingerprint: str | None = None
    parameters: dict[str, Any] | None = None
    log_path: str | None = None
    error: str | None = None
    attempts: int = 0
    cached_from: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, None while running."""
        return _seconds(self.started_at, self.ended_at)


@dataclass(frozen=True)
class Artifact(Record):
    """A typed output of a step; ``name`` is the output key, ``producer_id`` its execution."""

    id: int
    type: str
    name: str
    uri: str
    state: str
    created_at: datetime
    properties: dict[str, Any] | None = None
    fingerprint: str | None = None
    producer_id: int | None = None


@dataclass(frozen=True)
class Metric(Record):
    """One point of a metric series."""

    id: int
    run_id: str
    name: str
    step: int
    value: float
    recorded_at: datetime
    execution_id: int | None = None


@dataclass(frozen=True)
class ModelVersion(Record):
    """A registered model version; ``aliases`` point at it now (e.g. ``production``)."""

    id: int
    name: str
    version: int
    uri: str
    created_at: datetime
    artifact_id: int | None = None
    source_model_id: int | None = None
    run_id: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class AliasEvent(Record):
    """One entry of the alias audit trail: an alias ``set`` on or ``removed`` from a version."""

    id: int
    name: str
    alias: str
    version: int
    action: str
    at: datetime
    note: str = ""


@dataclass(frozen=True)
class CachedExecution(Record):
    """A reusable earlier execution and its live outputs by output key."""

    execution: Execution
    outputs: dict[str, Artifact] = field(default_factory=dict)
