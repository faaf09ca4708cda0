"""Delta Lake tables (through the ``deltalake`` package), optionally at a version (time travel).

Example::

    source = DeltaSource("lake/clicks")              # the latest version
    source = DeltaSource("lake/clicks", version=3)   # as the table was at version 3
    ExampleGen(input=source, key="user_id")

Partition columns are included. Partitions are the table's data files; the
fingerprint is the table URI and version, so a new commit invalidates caches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sluice.engine.base import ArrowSource
from sluice.errors import DataError


class DeltaSource(ArrowSource):
    """A Delta Lake table at its latest version or at ``version``.

    ``storage_options`` go to ``deltalake`` for object stores (S3, Azure, GCS).
    A source without a version is pinned to the latest version when first used,
    so all partitions of one read see the same commit.
    """

    def __init__(self, path: str, version: int | None = None,
                 storage_options: dict[str, str] | None = None) -> None:
        self.path = str(path)
        self.version = version
        self.storage_options = storage_options

    def _table(self) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            table = DeltaTable(self.path, version=self.version, storage_options=self.storage_options)
        except TableNotFoundError:
            raise DataError(f"no Delta table at {self.path!r}; check the path (it must hold a _delta_log "
                            f"folder)") from None
        except Exception as exc:  # noqa: BLE001 - deltalake raises plain errors for a bad version
            raise DataError(f"cannot open Delta table {self.path!r} at version {self.version}: {exc}") from None
        if self.version is None:
            self.version = table.version()  # pin: partitions read later must see this commit
        return table

    def pinned(self) -> DeltaSource:
        """A copy fixed at the version current now."""
        table = self._table()
        return DeltaSource(self.path, table.version(), self.storage_options)

    def describe(self) -> dict[str, Any]:
        """What this source is, for parameters and artifact properties."""
        return {"type": "delta", "path": self.path, "version": self.version}

    def __repr__(self) -> str:
        return f"DeltaSource({self.path!r}, version={self.version})"

    def fingerprint(self) -> str:
        """The table URI and version (the latest when no version was given)."""
        table = self._table()
        return hashlib.sha256(f"delta\0{table.table_uri}\0{table.version()}".encode()).hexdigest()

    # Not offered as ``arrow_dataset()`` for lazy scans: deltalake's dataset reads through a
    # Python-wrapped Rust filesystem, which DuckDB would call from its own threads for the
    # engine's lifetime. The engine copies the files' batches once instead (bounded memory).
    def _dataset(self) -> Any:
        return self._table().to_pyarrow_dataset()

    def schema(self) -> pa.Schema:
        return self._dataset().schema

    def partitions(self) -> list[str]:
        """The data files of the table version, relative to the table root."""
        return [fragment.path for fragment in self._dataset().get_fragments()]

    def read(self, partition: str) -> Iterator[pa.RecordBatch]:
        dataset = self._dataset()
        for fragment in dataset.get_fragments():
            if fragment.path == partition:
                # Through the dataset's scanner: partition values come from the Delta log.
                yield from fragment.to_batches(schema=dataset.schema)
                return
        raise DataError(f"data file {partition} is not part of Delta table {self.path!r} "
                        f"version {self.version}")
