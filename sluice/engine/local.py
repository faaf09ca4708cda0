"""The embedded engine: DuckDB scans and aggregates, pyarrow batches and Parquet writes.

DuckDB is multi-threaded and spills to disk, so memory stays bounded by
``memory_limit`` whatever the data size; Python only ever sees one record
batch at a time.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.engine.base import ArrowSource, BatchFn, CsvReport, Dataset, Engine, WriteResult

_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}
# Read through pyarrow (DuckDB's ORC reader is an extension that cannot be downloaded offline).
_ARROW_FORMATS = {"orc"}


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
        self._config = config
        self._serial: duckdb.DuckDBPyConnection | None = None  # see _cursor
        self._lock = threading.Lock()
        self._threads = threads or min(8, os.cpu_count() or 4)
        # pyarrow datasets scanned lazily by name (ORC files, lakes); a registration is local
        # to one DuckDB connection, so every cursor registers them all (cheap: a view each).
        self._arrow: dict[str, Any] = {}

    # A DuckDB connection is not safe to share between threads; each call takes
    # its own cursor so concurrent steps can use one engine.
    def _cursor(self, serial: bool = False) -> duckdb.DuckDBPyConnection:
        """A cursor of the main database, or (``serial``) of a one-thread database beside it.
        approx_quantile merges the t-digests of its threads in whatever order they finish, so
        its boundaries (and a bucketized feature's bucket count) changed from run to run on
        multi-row-group data; on one thread they do not. (``threads`` is a database-wide DuckDB
        setting, hence a second database rather than a SET on a cursor.)"""
        with self._lock:
            if serial and self._serial is None:
                self._serial = duckdb.connect(config={**self._config, "threads": 1,
                                                      "temp_directory": os.path.join(self._temp, "serial")})
            cur = (self._serial if serial else self._con).cursor()  # type: ignore[union-attr]
            arrow = list(self._arrow.items())
        for name, obj in arrow:
            cur.register(name, obj)
        return cur

    def _scan_arrow(self, dataset: Any, description: str) -> Dataset:
        """A lazy dataset over a pyarrow dataset: DuckDB scans it in batches, pushing projections down."""
        name = f"__arrow_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._arrow[name] = dataset
        return Dataset(self.name, name, description)

    def _sql(self, ds: Dataset, sql: str, serial: bool = False) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation]:
        cur = self._cursor(serial)
        return cur, cur.sql(f"WITH {_bind_data(ds)} {sql}")

    def read_files(self, paths: Sequence[str], fmt: str, *, hive_partitioning: bool = False,
                   **options: Any) -> Dataset:
        if fmt not in _READERS and fmt not in _ARROW_FORMATS:
            raise ValueError(f"unsupported file format {fmt!r}; expected one of {sorted({*_READERS, *_ARROW_FORMATS})}")
        if not paths:
            raise ValueError("no input files given")
        if fmt in _ARROW_FORMATS:
            return self._scan_arrow(_arrow_file_dataset(paths, fmt, hive_partitioning), f"{fmt}: {len(paths)} file(s)")
        # Explicit either way: DuckDB turns key=value folders into columns on its own otherwise.
        options["hive_partitioning"] = bool(hive_partitioning)
        args = [sql_literal(list(paths))] + [f"{k} = {sql_literal(v)}" for k, v in options.items()]
        return Dataset(self.name, f"{_READERS[fmt]}({', '.join(args)})", f"{fmt}: {len(paths)} file(s)")

    def read_arrow(self, source: ArrowSource) -> Dataset:
        """Scan ``source`` lazily when it offers a pyarrow dataset (``source.arrow_dataset()``);
        otherwise read its partitions on threads into Parquet shards in the temp directory.

        Memory stays bounded: each thread holds one record batch at a time. The
        shards live until the engine is closed.
        """
        offered = getattr(source, "arrow_dataset", None)
        dataset = offered() if callable(offered) else None
        if dataset is not None:
            return self._scan_arrow(dataset, f"arrow: {type(source).__name__}")
        schema = source.schema()
        parts = source.partitions()
        out = os.path.join(self._temp, f"arrow-{uuid.uuid4().hex[:12]}")
        files = self._write_partitions(source, parts, schema, out)
        if not files:  # an empty source still has its columns
            os.makedirs(out, exist_ok=True)
            files = [os.path.join(out, "empty.parquet")]
            pq.write_table(schema.empty_table(), files[0])
        return Dataset(self.name, f"read_parquet({sql_literal(files)})",
                       f"arrow: {type(source).__name__}, {len(parts)} partition(s)")

    def _write_partitions(self, source: ArrowSource, parts: list[Any], schema: pa.Schema, out: str) -> list[str]:
        def write(index: int) -> list[str]:
            writer = ShardWriter(os.path.join(out, f"p{index:05d}"))
            try:
                for batch in source.read(parts[index]):
                    writer.write(_conform(batch, schema, parts[index]))
            finally:
                writer.close()
            return [os.path.join(writer.out_dir, f) for f in writer.result.files]

        with ThreadPoolExecutor(max_workers=max(1, min(self._threads, len(parts)))) as pool:
            futures = [pool.submit(write, i) for i in range(len(parts))]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:  # a failed partition fails the read: stop what has not started
                f.cancel()
            return [path for f in futures for path in f.result()]  # partition order: deterministic

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
        if options.get("hive_partitioning"):  # folder columns are not CSV columns: no type to pin
            from sluice.io.hive import hive_values

            for p in paths:
                for key in hive_values(os.path.dirname(os.path.abspath(p))):
                    types.pop(key, None)
        options = {k: v for k, v in options.items() if k != "types"}
        read = self.read_files(paths, "csv", ignore_errors=True, types=types, **options)
        # ignore_errors only drops a bad row when the bad value is parsed; a query reading
        # fewer columns (count(*)) would keep it. Touching every column keeps them out always.
        ds = Dataset(self.name, f"(SELECT * FROM {read.plan} WHERE hash(COLUMNS(*)) IS NOT NULL)", read.description)
        return ds, CsvReport(rows, rejects)

    def write_partitioned(self, ds: Dataset, out_dir: str, by: str, *, fn: BatchFn | None = None
                          ) -> dict[str, WriteResult]:
        # Streamed through Python one batch at a time rather than DuckDB's partitioned COPY:
        # memory stays at a batch per partition, and row order (so the bytes) is deterministic.
        writers: dict[str, ShardWriter] = {}

        def write(batch: pa.RecordBatch) -> None:
            keys = batch.column(by)
            rest = batch.drop_columns([by])
            for value in pc.unique(keys).to_pylist():
                part = rest.filter(pc.equal(keys, value))
                writers.setdefault(str(value), ShardWriter(os.path.join(out_dir, str(value)))).write(part)

        try:
            write_behind((fn(b) if fn else b for b in self.iter_batches(ds)), write)
        finally:
            for w in writers.values():
                w.close()
        return {value: w.result for value, w in sorted(writers.items())}

    def select(self, ds: Dataset, sql: str) -> Dataset:
        return Dataset(self.name, f"(WITH {_bind_data(ds)} {sql})", ds.description)

    def schema(self, ds: Dataset) -> pa.Schema:
        cur, rel = self._sql(ds, "SELECT * FROM data LIMIT 0")
        return rel.to_arrow_table().schema

    def count(self, ds: Dataset) -> int:
        cur, rel = self._sql(ds, "SELECT count(*) FROM data")
        return int(rel.fetchone()[0])

    def aggregate(self, ds: Dataset, exprs: Mapping[str, str], *, deterministic: bool = False) -> dict[str, Any]:
        if not exprs:
            return {}
        names = list(exprs)
        select = ", ".join(f"{exprs[n]} AS \"c{i}\"" for i, n in enumerate(names))
        cur, rel = self._sql(ds, f"SELECT {select} FROM data", serial=deterministic)
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
            write_behind((fn(b) for b in self.iter_batches(ds, batch_size)), writer.write)
        finally:
            writer.close()
        return writer.result

    def close(self) -> None:
        with self._lock:
            self._arrow.clear()
        self._con.close()
        if self._serial is not None:
            self._serial.close()
        if self._own_temp:
            shutil.rmtree(self._temp, ignore_errors=True)


def _bind_data(ds: Dataset) -> str:
    """The CTE that names a dataset ``data`` in a query.

    NOT MATERIALIZED: DuckDB materializes a CTE that a query references more
    than once (the UNION ALL of per-column GROUP BYs in statistics and
    vocabularies), which holds every referenced column of every row in memory
    and spills under a memory limit (10M CTR rows, 2 GB: value counts took
    141 s instead of 3.5 s). Each reference re-scans instead, streaming and
    reading only its own columns from Parquet.
    """
    return f"data AS NOT MATERIALIZED (SELECT * FROM {ds.plan})"


def _conform(batch: pa.RecordBatch, schema: pa.Schema, partition: Any) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    if batch.schema.names != schema.names:
        raise ValueError(f"partition {partition!r} yielded columns {batch.schema.names}, "
                         f"expected {schema.names} (ArrowSource.schema())")
    return batch.cast(schema)


def _arrow_file_dataset(paths: Sequence[str], fmt: str, hive_partitioning: bool) -> Any:
    import pyarrow.dataset as pads

    if not hive_partitioning:
        return pads.dataset(list(paths), format=fmt)
    base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    # Stop above the first key=value folder: those folders are the partition columns.
    while "=" in os.path.basename(base):
        base = os.path.dirname(base)
    from sluice.io.hive import hive_schema

    dirs = [os.path.relpath(os.path.dirname(os.path.abspath(p)), base) for p in paths]
    partitioning = pads.partitioning(hive_schema(dirs), flavor="hive")
    return pads.dataset([os.path.abspath(p) for p in paths], format=fmt, partitioning=partitioning,
                        partition_base_dir=base)


def _describe(cur: duckdb.DuckDBPyConnection, ds: Dataset) -> dict[str, str]:
    return {name: typ for name, typ, *_ in cur.sql(f"DESCRIBE SELECT * FROM {ds.plan}").fetchall()}


_DONE = object()


def write_behind(batches: Iterator[Any], write: Callable[[Any], None], depth: int = 2) -> None:
    """Call ``write`` on each item on a background thread while the next one is produced.

    Scanning (DuckDB), mapping (Arrow kernels) and Parquet encoding all release
    the GIL, so overlapping them uses a second core; ``depth`` bounds the
    batches in flight, so memory stays bounded.
    """
    pending: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []

    def drain() -> None:
        while (item := pending.get()) is not _DONE:
            if not failed:
                try:
                    write(item)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    failed.append(exc)

    writer = threading.Thread(target=drain, name="sluice-write-behind", daemon=True)
    writer.start()
    try:
        for item in batches:
            if failed:
                break
            pending.put(item)
    finally:
        pending.put(_DONE)
        writer.join()
    if failed:
        raise failed[0]


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
