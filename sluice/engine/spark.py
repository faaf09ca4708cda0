"""The Spark engine: the engine contract on PySpark, for data that outgrows one machine.

How each part of the contract runs:

- SQL (``select``, ``aggregate``, ``query``) is the components' DuckDB SQL,
  translated by :mod:`sluice.engine.dialect` and run with ``spark.sql`` over a
  temporary view with a unique name (steps run concurrently on one session).
- Batch functions (``map_batches``, ``write_partitioned``) are the very Arrow
  functions the local engine runs (transform graph, split assignment, model
  scoring), shipped to executors through ``mapInArrow``. Each task writes its
  own Parquet shards with the local engine's :class:`ShardWriter` into a
  hidden temporary folder; when the job has succeeded the driver renames them
  into ``part-NNNNN.parquet`` in input order. A failed or crashed job leaves
  only the hidden folder, never a complete-looking shard.
- ``iter_batches`` streams one partition at a time to the driver
  (``toLocalIterator`` over Arrow IPC blobs): memory is bounded by a partition.
- CSV and JSON are typed by DuckDB's sniffer, as on the local engine
  (:mod:`sluice.engine.spark_csv`).

Results agree with the local engine: counts, splits, min/max, sums, vocabularies,
top values, histograms and transformed values are exact. Approximate: quantiles
only, from ``percentile_approx`` with accuracy ``dialect.QUANTILE_ACCURACY``
(10,000): the rank of each returned value is within ``1 / 10,000`` of the rows of
the requested rank (DuckDB's T-digest has its own, similar error). Means and
standard deviations are sums of doubles added in another order, so they can
differ from DuckDB's in the last bits (relative 1e-15).

Paths given to the engine must be visible to the driver and every executor
(a local path for ``local[*]``, a shared mount or cluster filesystem otherwise).

Example::

    engine = SparkEngine(SparkSettings(master="local[2]"))
    ds = engine.read_parquet(["train/part-00000.parquet"])
    engine.aggregate(ds, {"n": "count(*)", "q": "approx_quantile(x, [0.5])"})
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sluice.engine.base import ArrowSource, BatchFn, CsvReport, Dataset, Engine, WriteResult
from sluice.engine.dialect import to_spark
from sluice.engine.spark_session import SparkSettings, get_session
from sluice.errors import DataError

_FORMATS = ("csv", "parquet", "json", "orc")
_SHARDS = pa.schema([("partition", pa.int64()), ("dir", pa.string()), ("value", pa.string()),
                     ("files", pa.list_(pa.string())), ("rows", pa.int64())])
_SHARDS_DDL = "partition long, dir string, value string, files array<string>, rows long"


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Regroup Spark's Arrow batches (10,000 rows each by default) into batches of ``size`` rows."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        while rows >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size).combine_chunks().to_batches()[0]
            rest = table.slice(size)
            pending, rows = rest.combine_chunks().to_batches() if rest.num_rows else [], rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


@dataclass(frozen=True)
class _ShardTask:
    """Runs on an executor: maps one partition's batches through ``fn`` and writes Parquet shards.

    Shards go to ``<tmp>/p<partition>-a<attempt>/<value>/``; one summary row per
    value (files, rows) comes back to the driver, which renames the shards.
    """

    tmp_dir: str
    fn: BatchFn | None
    by: str | None
    schema: pa.Schema | None
    batch_size: int
    rows_per_file: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from sluice.engine.local import ShardWriter

        ctx = TaskContext.get()
        partition = ctx.partitionId() if ctx else 0
        task_dir = f"p{partition:06d}-a{ctx.attemptNumber() if ctx else 0}"
        writers: dict[str, ShardWriter] = {}
        try:
            for batch in _rebatch(batches, self.batch_size):
                out = self.fn(batch) if self.fn is not None else batch
                if self.schema is not None and out.schema != self.schema:
                    out = pa.Table.from_batches([out]).cast(self.schema).combine_chunks().to_batches()[0]
                for value, part in self._split(out):
                    if value not in writers:
                        writers[value] = ShardWriter(os.path.join(self.tmp_dir, task_dir, value), self.rows_per_file)
                    writers[value].write(part)
        finally:
            for w in writers.values():
                w.close()
        rows = [{"partition": partition, "dir": task_dir, "value": v, "files": w.result.files, "rows": w.result.rows}
                for v, w in writers.items() if w.result.rows]
        yield pa.RecordBatch.from_pylist(rows, schema=_SHARDS)

    def _split(self, batch: pa.RecordBatch) -> Iterator[tuple[str, pa.RecordBatch]]:
        if self.by is None:
            yield "", batch
            return
        keys = batch.column(self.by)
        rest = batch.drop_columns([self.by])
        for value in pc.unique(keys).to_pylist():
            yield str(value), rest.filter(pc.equal(keys, value))


@dataclass(frozen=True)
class _ToIpc:
    """Runs on an executor: packs batches of ``batch_size`` rows into Arrow IPC blobs for the driver."""

    batch_size: int

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in _rebatch(batches, self.batch_size):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            yield pa.RecordBatch.from_arrays([pa.array([sink.getvalue().to_pybytes()], pa.binary())], ["ipc"])


@dataclass(frozen=True)
class _SourceReader:
    """Runs on an executor: reads the source partitions whose indices arrive in the batches."""

    source: ArrowSource
    partitions: list[Any]
    schema: pa.Schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                for out in self.source.read(self.partitions[index]):
                    yield out if out.schema == self.schema else \
                        pa.Table.from_batches([out]).cast(self.schema).combine_chunks().to_batches()[0]


def _output_schema(fn: BatchFn | None, schema: pa.Schema) -> pa.Schema | None:
    """What ``fn`` returns, found by calling it on an empty batch; None when that cannot tell."""
    if fn is None:
        return schema
    try:
        out = fn(pa.RecordBatch.from_pylist([], schema=schema))
    except Exception:  # noqa: BLE001 - some functions need rows; each task then keeps its own schema
        return None
    if any(pa.types.is_null(t) for t in out.schema.types):
        return None  # an all-null column typed by an empty batch would not fit real rows
    return out.schema


def _hive_base(paths: Sequence[str]) -> str:
    """The folder above the ``key=value`` folders of every path (Spark's ``basePath``)."""
    bases = set()
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        while "=" in os.path.basename(folder):
            folder = os.path.dirname(folder)
        bases.add(folder)
    if len(bases) != 1:
        raise DataError(f"hive-partitioned files must share one root above their key=value folders; "
                        f"found {sorted(bases)}")
    return bases.pop()


class SparkEngine(Engine):
    """The engine contract on a Spark session (``local[*]`` or a cluster).

    Example::

        engine = SparkEngine(master="local[2]")
        ds = engine.read_files(["data/*.csv"], "csv", delim=",", header=True)
        engine.count(ds)
    """

    name = "spark"
    dialect = "spark"

    def __init__(self, settings: SparkSettings | None = None, *, master: str | None = None,
                 executor_memory: str | None = None, conf: Mapping[str, str] | None = None,
                 session: Any = None) -> None:
        self.settings = (settings or SparkSettings()).with_overrides(
            master=master, executor_memory=executor_memory, conf=dict(conf or {}))
        self.spark = session if session is not None else get_session(self.settings)

    # -- helpers ---------------------------------------------------------------------------------

    def _df(self, ds: Dataset) -> Any:
        if ds.engine != self.name:
            raise ValueError(f"dataset {ds.description!r} belongs to the {ds.engine} engine, not spark")
        return ds.plan

    def _wrap(self, df: Any, description: str) -> Dataset:
        return Dataset(self.name, df, description)

    def _sql(self, ds: Dataset, sql: str) -> Any:
        """Run DuckDB-dialect SQL over ``data`` bound to this dataset; returns a DataFrame.

        The view has a unique name, so concurrent steps never see each other's
        data; spark.sql resolves it at once, so it can be dropped right away.
        """
        view = f"sluice_data_{uuid.uuid4().hex}"
        self._df(ds).createTempView(view)
        try:
            return self.spark.sql(to_spark(sql, {"data": view}))
        finally:
            self.spark.catalog.dropTempView(view)

    # -- reading ---------------------------------------------------------------------------------

    def read_files(self, paths: Sequence[str], fmt: str, *, hive_partitioning: bool = False,
                   **options: Any) -> Dataset:
        if fmt not in _FORMATS:
            raise ValueError(f"unsupported file format {fmt!r}; expected one of {list(_FORMATS)}")
        if not paths:
            raise ValueError("no input files given")
        paths = [p if "://" in p else os.path.abspath(p) for p in paths]
        reader = self.spark.read
        if hive_partitioning:
            reader = reader.option("basePath", _hive_base(paths))
        if fmt in ("csv", "json"):
            df = self._read_typed(reader, paths, fmt, options, mode="FAILFAST")[0]
        else:
            if options:
                raise ValueError(f"options {sorted(options)} are not supported for {fmt} on the spark engine")
            df = reader.parquet(*paths) if fmt == "parquet" else reader.orc(paths)  # orc() takes one list
        if hive_partitioning:
            df = self._widen_partition_ints(df, paths)
        return self._wrap(df, f"{fmt}: {len(paths)} file(s)")

    def _read_typed(self, reader: Any, paths: list[str], fmt: str, options: Mapping[str, Any], mode: str,
                    corrupt: str | None = None) -> tuple[Any, pa.Schema, dict[str, str]]:
        """CSV / JSON with the schema and dialect DuckDB's sniffer finds (as the local engine reads them)."""
        from pyspark.sql.pandas.types import from_arrow_schema
        from pyspark.sql.types import StringType, StructField, StructType

        from sluice.engine.spark_csv import sniff

        arrow, spark_options = sniff(paths, fmt, options)
        schema = from_arrow_schema(arrow)
        if corrupt:
            schema = StructType(schema.fields + [StructField(corrupt, StringType())])
            spark_options["columnNameOfCorruptRecord"] = corrupt
        reader = reader.schema(schema).options(mode=mode, **spark_options)
        return (reader.csv(paths) if fmt == "csv" else reader.json(paths)), arrow, spark_options

    @staticmethod
    def _widen_partition_ints(df: Any, paths: list[str]) -> Any:
        """Spark types small integer partition values as int; DuckDB as BIGINT."""
        from pyspark.sql.functions import col
        from pyspark.sql.types import IntegerType

        keys = {part.split("=", 1)[0] for p in paths for part in p.split(os.sep) if "=" in part}
        for field in df.schema.fields:
            if field.name in keys and isinstance(field.dataType, IntegerType):
                df = df.withColumn(field.name, col(field.name).cast("long"))
        return df

    def read_arrow(self, source: ArrowSource) -> Dataset:
        from pyspark.sql.pandas.types import from_arrow_schema

        partitions = list(source.partitions())
        schema = source.schema()
        spark_schema = from_arrow_schema(schema)
        if not partitions:
            return self._wrap(self.spark.createDataFrame([], spark_schema), f"arrow: {type(source).__name__}")
        # One task per partition: a DataFrame of partition indices, read on the executors.
        indices = self.spark.range(0, len(partitions), 1, numPartitions=len(partitions))
        df = indices.mapInArrow(_SourceReader(source, partitions, schema), spark_schema)
        return self._wrap(df, f"arrow: {type(source).__name__}, {len(partitions)} partition(s)")

    def read_csv_checked(self, paths: Sequence[str], **options: Any) -> tuple[Dataset, CsvReport]:
        from pyspark.sql import functions as F

        from sluice.engine.spark_csv import CORRUPT, REJECTS_SCHEMA, rejects_table

        paths = [p if "://" in p else os.path.abspath(p) for p in paths]
        df, arrow, spark_options = self._read_typed(self.spark.read, paths, "csv", options, mode="PERMISSIVE",
                                                    corrupt=CORRUPT)
        data = [F.col(f"`{c}`") for c in df.columns if c != CORRUPT]
        # Spark converts only the columns a query reads, so a bad value in an unread column
        # would go unnoticed. An always-true test over a hash of every column makes every
        # query on this dataset parse every column (the local engine's count(COLUMNS(*))),
        # and keeps Spark from refusing queries that read only the corrupt-record column.
        df = df.filter(F.hash(*data) >= F.lit(-(2 ** 31)))
        bad = F.col(CORRUPT).isNotNull()
        good, rejected = df.select(F.sum(F.when(bad, 0).otherwise(1)), F.count(F.col(CORRUPT))).first()
        if rejected:
            rows = (df.filter(bad).select(F.input_file_name().alias("file"), F.col(CORRUPT).alias("raw"))
                    .toArrow().to_pylist())
            rejects = rejects_table(rows, paths, arrow, spark_options)
        else:
            rejects = REJECTS_SCHEMA.empty_table()
        clean = df.filter(F.col(CORRUPT).isNull()).drop(CORRUPT)
        return self._wrap(clean, f"csv: {len(paths)} file(s)"), CsvReport(int(good or 0), rejects)

    # -- inspecting and SQL ----------------------------------------------------------------------

    def schema(self, ds: Dataset) -> pa.Schema:
        from pyspark.sql.pandas.types import to_arrow_schema

        return to_arrow_schema(self._df(ds).schema, timezone="UTC")

    def count(self, ds: Dataset) -> int:
        return int(self._df(ds).count())

    def select(self, ds: Dataset, sql: str) -> Dataset:
        return self._wrap(self._sql(ds, sql), ds.description)

    def aggregate(self, ds: Dataset, exprs: Mapping[str, str], *, deterministic: bool = False) -> dict[str, Any]:
        # percentile_approx merges its partitions' summaries in partition order: the same files
        # give the same partitions, so ``deterministic`` needs nothing more here.
        if not exprs:
            return {}
        names = list(exprs)
        select = ", ".join(f'{exprs[n]} AS "c{i}"' for i, n in enumerate(names))
        row = self._sql(ds, f"SELECT {select} FROM data").toArrow().to_pylist()[0]
        return {n: row[f"c{i}"] for i, n in enumerate(names)}

    def query(self, ds: Dataset, sql: str) -> pa.Table:
        return self._sql(ds, sql).toArrow()

    def iter_batches(self, ds: Dataset, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        # One partition at a time reaches the driver; never the whole dataset.
        blobs = self._df(ds).mapInArrow(_ToIpc(batch_size), "ipc binary")
        for row in blobs.toLocalIterator(prefetchPartitions=False):
            with pa.ipc.open_stream(pa.py_buffer(bytes(row[0]))) as reader:
                for batch in reader:
                    if batch.num_rows:
                        yield batch

    # -- writing ---------------------------------------------------------------------------------

    def write_parquet(self, ds: Dataset, out_dir: str, *, rows_per_file: int = 1_000_000) -> WriteResult:
        return self._write(ds, out_dir, None, None, 65536, rows_per_file)[""]

    def map_batches(self, ds: Dataset, fn: BatchFn, out_dir: str, *, batch_size: int = 65536,
                    rows_per_file: int = 1_000_000) -> WriteResult:
        return self._write(ds, out_dir, fn, None, batch_size, rows_per_file)[""]

    def write_partitioned(self, ds: Dataset, out_dir: str, by: str, *, fn: BatchFn | None = None
                          ) -> dict[str, WriteResult]:
        results = self._write(ds, out_dir, fn, by, 65536, 1_000_000)
        results.pop("", None)
        return results

    def _write(self, ds: Dataset, out_dir: str, fn: BatchFn | None, by: str | None, batch_size: int,
               rows_per_file: int) -> dict[str, WriteResult]:
        """Run the shard tasks, then rename their shards into ``part-NNNNN.parquet`` in input order."""
        os.makedirs(out_dir, exist_ok=True)
        tmp = os.path.join(os.path.abspath(out_dir), f".sluice-spark-{uuid.uuid4().hex}")
        schema = _output_schema(fn, self.schema(ds))
        task = _ShardTask(tmp, fn, by, schema, batch_size, rows_per_file)
        results: dict[str, WriteResult] = {"": WriteResult()} if by is None else {}
        try:
            shards = self._df(ds).mapInArrow(task, _SHARDS_DDL).toArrow().to_pylist()
            for shard in sorted(shards, key=lambda s: (s["partition"], s["value"])):
                result = results.setdefault(shard["value"], WriteResult())
                folder = os.path.join(out_dir, shard["value"])
                os.makedirs(folder, exist_ok=True)
                for name in shard["files"]:
                    final = f"part-{len(result.files):05d}.parquet"
                    os.replace(os.path.join(tmp, shard["dir"], shard["value"], name), os.path.join(folder, final))
                    result.files.append(final)
                result.rows += shard["rows"]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dict(sorted(results.items()))

    def close(self) -> None:
        """Nothing to release per engine: the session is shared (see :func:`spark_session.stop_session`)."""
