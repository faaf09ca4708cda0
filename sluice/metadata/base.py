"""The engine side of the metadata store: open, close, create the schema, run transactions.

Every public store call is one short transaction through :meth:`StoreBase._read`
or :meth:`StoreBase._write`: reads take no lock (WAL), writes take SQLite's
write lock at BEGIN, and both are replayed on "database is locked".

Example::

    with MetadataStore.open("meta.db") as store:   # MetadataStore subclasses StoreBase
        store.url                                   # 'sqlite:////abs/path/meta.db'
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from sluice.metadata.db import create_engine, is_transient, resolve_url, retry, write_engine
from sluice.metadata.schema import SCHEMA_VERSION, metadata, store_info

T = TypeVar("T")
S = TypeVar("S", bound="StoreBase")


class StoreBase:
    """Owns the engine: opening, closing, schema creation and the read/write transaction helpers."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        self._init_schema()
        # A forked child must not reuse the parent's open connections.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) and s._engine.dispose(close=False))

    @classmethod
    def open(cls: type[S], url: str | os.PathLike[str] | None = None, *, workdir: str | os.PathLike[str] = ".") -> S:
        """Open (creating if needed) a store.

        ``None`` -> ``$SLUICE_STORE`` or ``<workdir>/.sluice/metadata.db``; a plain path -> a SQLite
        file; anything else is a SQLAlchemy URL (``postgresql+psycopg://user@host/db``).

        Example::

            store = MetadataStore.open("postgresql+psycopg://ml@db/sluice")
        """
        return cls(create_engine(resolve_url(url, workdir)))

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for ad-hoc queries over the tables in ``sluice.metadata.schema``."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password masked: ``store.url``."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close pooled connections: ``store.close()`` (or use ``with MetadataStore.open() as store``)."""
        self._engine.dispose()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- plumbing -----------------------------------------------------------------------------

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        def tx() -> T:
            with self._engine.connect() as conn:
                return fn(conn)

        return retry(tx)

    def _write(self, fn: Callable[[sa.Connection], T], *, integrity: bool = False) -> T:
        def tx() -> T:
            with self._writer.begin() as conn:
                return fn(conn)

        return retry(tx, integrity=integrity)

    def _init_schema(self) -> None:
        def version(conn: sa.Connection) -> int | None:
            if not sa.inspect(conn).has_table(store_info.name):
                return None
            value = conn.scalar(sa.select(store_info.c.value).where(store_info.c.key == "schema_version"))
            return None if value is None else int(value)

        def create(conn: sa.Connection) -> int:
            metadata.create_all(conn)  # checks first; the write lock serializes concurrent openers
            found = version(conn)
            if found is None:
                conn.execute(store_info.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return found or SCHEMA_VERSION

        found = self._read(version)
        if found is None:
            try:
                found = self._write(create, integrity=True)
            except sa.exc.DBAPIError as error:  # PostgreSQL: another process created it concurrently
                if "already exists" not in str(error).lower() and not is_transient(error):
                    raise
                found = self._write(create, integrity=True)
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"metadata store {self.url} has schema v{found}, newer than this Sluice understands "
                f"(v{SCHEMA_VERSION}); upgrade sluice"
            )
