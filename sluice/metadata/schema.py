"""Tables of the metadata store, as portable SQLAlchemy Core.

The same definitions run on SQLite (the default, one file) and PostgreSQL:
only generic types are used, JSON columns use the generic ``JSON`` type (text
in SQLite, ``json`` in PostgreSQL) and timestamps are timezone-aware UTC.
Status values are checked in Python, not with CHECK constraints, so adding a
status later needs no migration.

Example::

    import sqlalchemy as sa
    from sluice.metadata.schema import metadata, runs
    engine = sa.create_engine("sqlite:///meta.db")
    metadata.create_all(engine)
    with engine.connect() as conn:
        conn.execute(sa.select(runs.c.id, runs.c.status)).all()
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

SCHEMA_VERSION = 1

RUN_STATUSES = ("running", "succeeded", "failed", "killed")
EXECUTION_STATUSES = ("running", "succeeded", "failed", "cached", "skipped")
ARTIFACT_STATES = ("pending", "live", "deleted")
EVENT_KINDS = ("input", "output")
ALIAS_ACTIONS = ("set", "removed")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone support: values are stored as naive UTC text (which
    sorts correctly) and get their UTC tzinfo back when read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # naive input is taken to be UTC already
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# Integer ids: BIGINT on servers (metrics and events grow), but SQLite needs
# exactly INTEGER PRIMARY KEY for an autoincrementing rowid alias.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# JSON stored as SQL NULL (not the JSON literal 'null') when the value is None.
Json = sa.JSON(none_as_null=True)

metadata = sa.MetaData()


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


store_info = sa.Table(
    "store_info",  # key/value facts about the store itself, e.g. schema_version
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

pipelines = sa.Table(
    "pipelines",
    metadata,
    _id(),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("pipeline_id", Id, sa.ForeignKey("pipelines.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("params", Json),
    sa.Column("engine", sa.String(64)),
    sa.Column("user", sa.String(255)),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Index("ix_runs_pipeline_started", "pipeline_id", "started_at"),
    sa.Index("ix_runs_status", "status"),
)

executions = sa.Table(
    "executions",
    metadata,
    _id(),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("step", sa.String(255), nullable=False),
    sa.Column("component", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("fingerprint", sa.String(128), index=True),
    sa.Column("parameters", Json),
    sa.Column("log_path", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("cached_from", Id, sa.ForeignKey("executions.id", ondelete="SET NULL")),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    _id(),
    sa.Column("type", sa.String(128), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("properties", Json),
    sa.Column("fingerprint", sa.String(128)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("producer_id", Id, sa.ForeignKey("executions.id"), index=True),
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("execution_id", Id, sa.ForeignKey("executions.id"), nullable=False),
    sa.Column("artifact_id", Id, sa.ForeignKey("artifacts.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    # Recording the same edge twice is a no-op rather than a duplicate.
    sa.UniqueConstraint("execution_id", "artifact_id", "kind", "key", name="uq_events_edge"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    _id(),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("execution_id", Id, sa.ForeignKey("executions.id")),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False, default=0),
    sa.Column("value", sa.Float),  # NULL stands for NaN (SQLite cannot store NaN)
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_metrics_run_name", "run_id", "name"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    _id(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("artifact_id", Id, sa.ForeignKey("artifacts.id")),
    sa.Column("source_model_id", Id, sa.ForeignKey("artifacts.id")),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id")),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The unique key is what makes concurrent registration safe: a loser retries.
    sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("alias", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    _id(),
    sa.Column("name", sa.String(255), nullable=False, index=True),
    sa.Column("alias", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
)


def check_value(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    """Raise a ValueError naming the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"invalid {kind} {value!r}; expected one of: {', '.join(allowed)}")
    return value
