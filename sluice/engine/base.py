"""The engine contract: the data-parallel work a step hands to an engine.

A pipeline never imports DuckDB or Spark. Components and ML libraries talk to an
:class:`Engine` through this small contract, so the same code runs embedded
(``local``: DuckDB + Arrow) or on a cluster (``spark``).

SQL passed to an engine is written in DuckDB's dialect; an engine whose
dialect differs translates it (sqlglot) before running it. Inside SQL the
dataset is always called ``data``.

Example::

    from sluice.engine import get_engine
    engine = get_engine("local")
    ds = engine.read_parquet(["train/part-0.parquet"])
    engine.aggregate(ds, {"n": "count(*)", "mean_x": "avg(x)"})
    # {'n': 1000, 'mean_x': 0.12}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]


@dataclass(frozen=True)
class Dataset:
    """A lazy handle on data an engine can scan; nothing is read until used.

    ``plan`` is engine specific (a DuckDB table expression, a Spark DataFrame).
    """

    engine: str
    plan: Any
    description: str = ""


@dataclass
class WriteResult:
    """What a Parquet write produced: the shard files (relative names) and row count."""

    files: list[str] = field(default_factory=list)
    rows: int = 0


@dataclass
class CsvReport:
    """Malformed rows found while parsing CSV files: ``rejects`` has one row per bad line
    (``file``, ``line``, ``column``, ``error``, ``raw``); ``rows`` counts the good ones."""

    rows: int
    rejects: pa.Table


class ArrowSource(ABC):
    """Data read as Arrow batches, one independent partition at a time.

    Implementations must be picklable: on Spark, ``read`` runs on executors.
    """

    @abstractmethod
    def schema(self) -> pa.Schema:
        """The Arrow schema every partition yields."""

    @abstractmethod
    def partitions(self) -> list[Any]:
        """Picklable descriptions of the partitions (key ranges, file names ...)."""

    @abstractmethod
    def read(self, partition: Any) -> Iterator[pa.RecordBatch]:
        """Stream one partition's rows as record batches conforming to :meth:`schema`."""


class Engine(ABC):
    """Runs scans, SQL aggregates, Arrow batch maps and Parquet writes."""

    name: str = ""
    dialect: str = "duckdb"

    @abstractmethod
    def read_files(self, paths: Sequence[str], fmt: str, *, hive_partitioning: bool = False,
                   **options: Any) -> Dataset:
        """Read CSV (``csv``), Parquet (``parquet``), JSON-lines (``json``) or ORC (``orc``) files lazily.

        With ``hive_partitioning`` the ``key=value`` folders above each file
        (``dt=2026-01-01/part-0.parquet``) become columns.
        """

    @abstractmethod
    def read_arrow(self, source: ArrowSource) -> Dataset:
        """Read a source that yields Arrow record batches per partition (databases, lakes, object stores).

        The engine reads the partitions in parallel: threads on the local
        engine, Spark tasks (``mapInArrow``) on Spark.
        """

    @abstractmethod
    def read_csv_checked(self, paths: Sequence[str], **options: Any) -> tuple[Dataset, CsvReport]:
        """Parse CSV files once to find malformed rows; the dataset returned skips them."""

    def read_parquet(self, paths: Sequence[str]) -> Dataset:
        """Read Parquet files lazily."""
        return self.read_files(paths, "parquet")

    @abstractmethod
    def schema(self, ds: Dataset) -> pa.Schema:
        """The Arrow schema of the dataset."""

    @abstractmethod
    def count(self, ds: Dataset) -> int:
        """Exact number of rows."""

    @abstractmethod
    def select(self, ds: Dataset, sql: str) -> Dataset:
        """A new lazy dataset from a query over ``data`` (filter, project, join)."""

    @abstractmethod
    def aggregate(self, ds: Dataset, exprs: Mapping[str, str], *, deterministic: bool = False) -> dict[str, Any]:
        """Evaluate named aggregate expressions over the whole dataset in one pass.

        ``deterministic=True`` asks for the same result on every run over the same data, also
        from approximate aggregates (``approx_quantile``), at some cost in speed: what a fitted
        transform needs, where a statistic for display need not pay for it."""

    @abstractmethod
    def query(self, ds: Dataset, sql: str) -> pa.Table:
        """Run a query over ``data`` whose result is small (group-bys, top-k)."""

    @abstractmethod
    def iter_batches(self, ds: Dataset, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """Stream the dataset as Arrow record batches (bounded memory)."""

    @abstractmethod
    def write_parquet(self, ds: Dataset, out_dir: str, *, rows_per_file: int = 1_000_000) -> WriteResult:
        """Write the dataset as Parquet shards ``part-NNNNN.parquet`` under ``out_dir``."""

    @abstractmethod
    def write_partitioned(self, ds: Dataset, out_dir: str, by: str, *, fn: BatchFn | None = None
                          ) -> dict[str, WriteResult]:
        """Write Parquet shards into ``out_dir/<value of column by>/``, without that column.

        ``fn``, when given, maps each batch first (it may add the column ``by``).
        """

    @abstractmethod
    def map_batches(
        self,
        ds: Dataset,
        fn: BatchFn,
        out_dir: str,
        *,
        batch_size: int = 65536,
        rows_per_file: int = 1_000_000,
    ) -> WriteResult:
        """Stream batches through ``fn`` (a pure Arrow function) into Parquet shards."""

    def close(self) -> None:
        """Release engine resources."""
