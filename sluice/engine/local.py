"""The embedded engine: DuckDB scans and aggregates, pyarrow batches and Parquet writes.

DuckDB is multi-threaded and spills to disk, so memory stays bounded by
``memory_limit`` whatever the data size; Python only ever sees one record
batch at a time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.engine.base import ArrowSource, BatchFn, CsvReport, Dataset, Engine, WriteResult

_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}


def sql_literal(value: Any) -> str:
    """Render a Python value as a DuckDB SQL literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_literal(str(k))}: {sql_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"


class LocalEngine(Engine):
    """DuckDB + Arrow, in process.

    Example::

        engine = LocalEngine(memory_limit="1GB")
        ds = engine.read_files(["data/*.csv"], "csv")
        engine.count(ds)
    """

    name = "local"
    dialect = "duckdb"

    def __init__(self, memory_limit: str | None = None, threads: int | None = None,
                 temp_directory: str | None = None) -> None:
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        # A spill directory of its own: DuckDB names spill files alike in every process, so
        # engines sharing one directory would read each other's blocks.
        self._own_temp = temp_directory is None
        self._temp = temp_directory or tempfile.mkdtemp(prefix="sluice-duckdb-")
        config["temp_directory"] = self._temp
        config["preserve_insertion_order"] = True
        self._con = duckdb.connect(config=config)
        self._lock = threading.Lock()

    # A DuckDB connection is not safe to share between threads; each call takes
    # its own cursor so concurrent steps can use one engine.
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._con.cursor()

    def _sql(self, ds: Dataset, sql: str) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation]:
        cur = self._cursor()
        return cur, cur.sql(f"WITH data AS (SELECT * FROM {ds.plan}) {sql}")

    def read_files(self, paths: Sequence[str], fmt: str, *, hive_partitioning: bool = False,
                   **options: Any) -> Dataset:
        if fmt not in _READERS:
            raise ValueError(f"unsupported file format {fmt!r}; expected one of {sorted(_READERS)}")
        if not paths:
            raise ValueError("no input files given")
        if hive_partitioning:
            options["hive_partitioning"] = True
        args = [sql_literal(list(paths))] + [f"{k} = {sql_literal(v)}" for k, v in options.items()]
        return Dataset(self.name, f"{_READERS[fmt]}({', '.join(args)})", f"{fmt}: {len(paths)} file(s)")

    def read_arrow(self, source: ArrowSource) -> Dataset:
        raise NotImplementedError("read_arrow lands with the database and lake sources")

    def read_csv_checked(self, paths: Sequence[str], **options: Any) -> tuple[Dataset, CsvReport]:
        checking = self.read_files(paths, "csv", store_rejects=True, **options)
        cur = self._cursor()
        # count(COLUMNS(*)) makes DuckDB parse every column, so every bad value is found.
        rows = int(cur.sql(f"SELECT count(*), count(COLUMNS(*)) FROM {checking.plan}").fetchall()[0][0])
        # One row per bad line (DuckDB reports one error per bad value).
        rejects = cur.sql(
            "SELECT s.file_path AS file, e.line, string_agg(DISTINCT e.column_name, ',') AS column, "
            "string_agg(DISTINCT e.error_type, ',') AS error, any_value(e.csv_line) AS raw, "
            "string_agg(e.error_message, '; ') AS message FROM reject_errors e "
            "JOIN reject_scans s USING (scan_id, file_id) GROUP BY ALL ORDER BY file, line").to_arrow_table()
        # Pin the sniffed column types so the second scan parses exactly as the check did.
        types = _describe(cur, checking)
        options = {k: v for k, v in options.items() if k != "types"}
        ds = self.read_files(paths, "csv", ignore_errors=True, types=types, **options)
        return ds, CsvReport(rows, rejects)

    def write_partitioned(self, ds: Dataset, out_dir: str, by: str, *, fn: BatchFn | None = None
                          ) -> dict[str, WriteResult]:
        # Streamed through Python one batch at a time rather than DuckDB's partitioned COPY:
        # memory stays at a batch per partition, and row order (so the bytes) is deterministic.
        writers: dict[str, ShardWriter] = {}
        try:
            for batch in self.iter_batches(ds):
                if fn is not None:
                    batch = fn(batch)
                keys = batch.column(by)
                rest = batch.drop_columns([by])
                for value in pc.unique(keys).to_pylist():
                    part = rest.filter(pc.equal(keys, value))
                    writers.setdefault(str(value), ShardWriter(os.path.join(out_dir, str(value)))).write(part)
        finally:
            for w in writers.values():
                w.close()
        return {value: w.result for value, w in sorted(writers.items())}

    def select(self, ds: Dataset, sql: str) -> Dataset:
        return Dataset(self.name, f"(WITH data AS (SELECT * FROM {ds.plan}) {sql})", ds.description)

    def schema(self, ds: Dataset) -> pa.Schema:
        cur, rel = self._sql(ds, "SELECT * FROM data LIMIT 0")
        return rel.to_arrow_table().schema

    def count(self, ds: Dataset) -> int:
        cur, rel = self._sql(ds, "SELECT count(*) FROM data")
        return int(rel.fetchone()[0])

    def aggregate(self, ds: Dataset, exprs: Mapping[str, str]) -> dict[str, Any]:
        if not exprs:
            return {}
        names = list(exprs)
        select = ", ".join(f"{exprs[n]} AS \"c{i}\"" for i, n in enumerate(names))
        cur, rel = self._sql(ds, f"SELECT {select} FROM data")
        row = rel.fetchone()
        return dict(zip(names, row))

    def query(self, ds: Dataset, sql: str) -> pa.Table:
        cur, rel = self._sql(ds, sql)
        return rel.to_arrow_table()

    def iter_batches(self, ds: Dataset, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        cur, rel = self._sql(ds, "SELECT * FROM data")
        reader = rel.to_arrow_reader(batch_size)
        for batch in reader:
            if batch.num_rows:
                yield batch

    def write_parquet(self, ds: Dataset, out_dir: str, *, rows_per_file: int = 1_000_000) -> WriteResult:
        return self.map_batches(ds, lambda b: b, out_dir, rows_per_file=rows_per_file)

    def map_batches(self, ds: Dataset, fn: BatchFn, out_dir: str, *, batch_size: int = 65536,
                    rows_per_file: int = 1_000_000) -> WriteResult:
        writer = ShardWriter(out_dir, rows_per_file)
        try:
            for batch in self.iter_batches(ds, batch_size):
                writer.write(fn(batch))
        finally:
            writer.close()
        return writer.result

    def close(self) -> None:
        self._con.close()
        if self._own_temp:
            shutil.rmtree(self._temp, ignore_errors=True)


def _describe(cur: duckdb.DuckDBPyConnection, ds: Dataset) -> dict[str, str]:
    return {name: typ for name, typ, *_ in cur.sql(f"DESCRIBE SELECT * FROM {ds.plan}").fetchall()}


class ShardWriter:
    """Writes record batches into ``part-NNNNN.parquet`` shards of bounded size.

    Each shard is written under a hidden temporary name and renamed when
    complete, so a crash never leaves a shard that looks whole.
    """

    def __init__(self, out_dir: str, rows_per_file: int = 1_000_000) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.rows_per_file = rows_per_file
        self.result = WriteResult()
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0
        self._schema: pa.Schema | None = None

    def _open(self, schema: pa.Schema) -> None:
        name = f"part-{len(self.result.files):05d}.parquet"
        self._tmp = os.path.join(self.out_dir, f".{name}.tmp")
        self._final = os.path.join(self.out_dir, name)
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")
        self._rows_in_file = 0
        self.result.files.append(name)

    def _finish_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            os.replace(self._tmp, self._final)
            self._writer = None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if self._schema is None:
            self._schema = batch.schema
        elif batch.schema != self._schema:
            batch = batch.cast(self._schema) if isinstance(batch, pa.Table) else \
                pa.Table.from_batches([batch]).cast(self._schema)
        if self._writer is None:
            self._open(self._schema)
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self._writer.write_table(table, row_group_size=min(131072, self.rows_per_file))
        self._rows_in_file += table.num_rows
        self.result.rows += table.num_rows
        if self._rows_in_file >= self.rows_per_file:
            self._finish_file()

    def close(self) -> None:
        self._finish_file()
