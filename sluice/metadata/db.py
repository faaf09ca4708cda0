"""Connecting to the metadata database: URL resolution, SQLite tuning, retries.

Several runner processes may write to one SQLite file at once. Three things
make that lose nothing:

* WAL journal, ``busy_timeout`` and ``synchronous=NORMAL`` on every connection:
  readers never block writers, a writer waits (up to 30 s) for another instead
  of failing, and a commit costs no fsync.
* Write transactions start with ``BEGIN IMMEDIATE``: they take the write lock
  up front. A deferred transaction that reads and then writes can fail at once
  with SQLITE_BUSY (the busy handler is bypassed to avoid deadlock).
* Any remaining "database is locked" (or PostgreSQL serialization failure) is
  retried a few times with jittered backoff; transactions are short and
  idempotent as a unit, so replaying one is safe.

Example::

    engine = create_engine(resolve_url(None, workdir="."))   # ./.sluice/metadata.db
    with write_engine(engine).begin() as conn: ...
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

ENV_VAR = "SLUICE_STORE"
DEFAULT_PATH = Path(".sluice") / "metadata.db"
BUSY_TIMEOUT_MS = 30_000
RETRIES = 6

# Execution option that marks an engine proxy's transactions as writes.
_IMMEDIATE = "sluice_sqlite_immediate"


def resolve_url(url: str | os.PathLike[str] | None, workdir: str | os.PathLike[str] = ".") -> str:
    """Turn what a user passed into a SQLAlchemy URL.

    ``None`` -> ``$SLUICE_STORE`` or ``<workdir>/.sluice/metadata.db``; a plain
    path (relative to ``workdir``) -> a SQLite file, parent folders created;
    anything with ``://`` -> used as given.

    Example::

        resolve_url("meta.db", workdir="/tmp/p")   # 'sqlite:////tmp/p/meta.db'
        resolve_url("postgresql+psycopg://u@db/sluice")
    """
    if url is None:
        url = os.environ.get(ENV_VAR) or str(Path(workdir) / DEFAULT_PATH)
    url = os.fspath(url)
    if "://" in url:
        return url
    if url == ":memory:":
        return "sqlite://"
    path = Path(url).expanduser()
    if not path.is_absolute():
        path = Path(workdir) / path
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def create_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine; SQLite connections get WAL, busy timeout and BEGIN control."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            # pool_pre_ping: survive server restarts and idle connections dropped by proxies.
            return sa.create_engine(url, pool_pre_ping=True)
        except ImportError as error:
            raise ImportError(
                f"the metadata store URL {parsed.render_as_string(hide_password=True)} needs the database "
                f"driver {error.name!r}, which is not installed; for PostgreSQL: pip install 'psycopg[binary]' "
                "and use a postgresql+psycopg:// URL"
            ) from error

    memory = parsed.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:
        # One shared connection, otherwise every pooled connection is a new empty database.
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver (it would issue a deferred
        # BEGIN lazily); the "begin" hook below emits the right one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # first: the WAL switch may wait
        if not memory:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def write_engine(engine: sa.Engine) -> sa.Engine:
    """A proxy of ``engine`` (same pool) whose transactions take the write lock at BEGIN."""
    return engine.execution_options(**{_IMMEDIATE: True})


def is_transient(error: BaseException) -> bool:
    """True for lock and serialization errors that succeed when the transaction is replayed."""
    if not isinstance(error, exc.DBAPIError):
        return False
    text = str(getattr(error, "orig", error)).lower()
    return any(
        s in text
        for s in ("database is locked", "database table is locked", "busy", "could not serialize", "deadlock")
    )


def _is_unique_violation(error: exc.IntegrityError) -> bool:
    # Not foreign-key or NOT NULL violations: replaying those cannot succeed.
    text = str(error.orig).lower()
    return "unique" in text or "duplicate key" in text


def retry(fn: Callable[[], T], *, integrity: bool = False, attempts: int = RETRIES) -> T:
    """Call ``fn`` (one whole transaction), replaying it on transient errors.

    With ``integrity=True`` unique violations are replayed too: used where two
    writers race for the same key (a pipeline name, the next model version)
    and the loser should see the winner's row on the next try.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except exc.IntegrityError as error:
            if not (integrity and _is_unique_violation(error)) or attempt == attempts - 1:
                raise
        except exc.DBAPIError as error:
            if not is_transient(error) or attempt == attempts - 1:
                raise
        time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")
