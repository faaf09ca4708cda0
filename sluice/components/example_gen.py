"""ExampleGen: raw data in (files, object stores, databases, lakes), Parquet shards per split out.

Splits are deterministic: each row's split is chosen from a stable hash of its
key column (or of the whole row) and a seed (:mod:`sluice.io.split_assignment`), computed
by one Arrow batch function on every engine, so the same data always lands in
the same split, on any engine and however the files are cut.

Incremental spans: an input path with a ``{span}`` placeholder
(``data/dt={span}/*.csv``) ingests the latest span only (``span="latest"``, the
default), every span (``"all"``) or one named span; a column whose type changed
since the previous span of the same input fails the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.dsl.artifacts import Examples, RawData
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.engine.base import ArrowSource
from sluice.errors import DataError
from sluice.io.files import FileSource
from sluice.io.sources import ResolvedInput, read_source, resolve_input
from sluice.io.spans import has_span, span_sort_key
from sluice.io.split_assignment import SPLIT_COLUMN, SplitAssigner

DEFAULT_SPLITS = {"train": 0.8, "eval": 0.2}


class ExampleGen(Component):
    """Ingest data into split Examples.

    ``input`` is one of: paths, directories or globs of CSV, Parquet, JSON-lines
    or ORC files (``key=value`` folders become columns); a ``{span}`` pattern; an
    ``s3://bucket/prefix/*.parquet`` URI; a source object (:class:`~sluice.io.SqlSource`,
    :class:`~sluice.io.DeltaSource`, any :class:`~sluice.engine.base.ArrowSource`
    with ``describe()`` and ``fingerprint()``); or another step's :class:`RawData` output.

    Example::

        gen = ExampleGen(input="data/clicks-*.csv", splits={"train": 0.8, "eval": 0.2}, key="user_id")
        gen = ExampleGen(input="data/dt={span}/*.csv")            # the newest day only
        gen = ExampleGen(input=SqlSource(url, table="orders", partition_column="id"))
        StatisticsGen(examples=gen.outputs.examples)

    Malformed CSV rows are written to ``rejects.csv`` in the artifact with file
    and line; the step fails when they exceed ``max_reject_fraction`` of the rows.
    The cache fingerprint covers the data read (see each source's ``fingerprint``);
    ``cache=False`` always re-reads.
    """

    INPUTS = {"data": InputSpec(RawData, optional=True)}
    OUTPUTS = {"examples": Examples}
    VERSION = "3"  # 3: sources (ORC, hive folders, S3, SQL, Delta) and spans

    def __init__(self, input: str | Sequence[str] | Channel | ArrowSource, *,
                 splits: Mapping[str, float] | None = None, key: str | None = None, seed: int = 0,
                 format: str | None = None, span: str | int | None = None, max_reject_fraction: float = 0.0,
                 name: str | None = None, cache: bool = True) -> None:
        channel = input if isinstance(input, Channel) else None
        self.source = input if isinstance(input, ArrowSource) else None
        paths = None if channel or self.source else ([input] if isinstance(input, str) else list(input))
        if span is not None and not any(has_span(p) for p in paths or []):
            raise ValueError(f"span={span!r} needs an input path with a {{span}} placeholder, "
                             f"e.g. 'data/dt={{span}}/*.csv'")
        params: dict[str, Any] = {
            "paths": paths, "splits": dict(splits or DEFAULT_SPLITS), "key": key, "seed": seed, "format": format,
            "max_reject_fraction": max_reject_fraction,
            # The source's description, never the object: it holds no password (see SqlSource.describe).
            "source": self.source.describe() if self.source is not None else None,
            "span": None if span is None else str(span),
        }
        super().__init__(name=name, inputs={"data": channel}, params=params, cache=cache)

    def _resolve(self, data_path: str | None = None) -> ResolvedInput:
        p = self.params
        if self.source is not None:
            return resolve_input(source=self.source)
        return resolve_input(p["paths"] or [data_path], format=p["format"], span=p["span"])

    def external_fingerprint(self) -> str | None:
        # New, removed, resized or touched files, a new table version, changed row counts:
        # each changes the fingerprint, so new data is never served from cache.
        if self.params["paths"] is None and self.source is None:
            return None  # another step's output: its content fingerprint is already an input
        return self._resolve().fingerprint()

    def execute(self, ctx: StepContext) -> None:
        p = ctx.params
        data = ctx.inputs.get("data")
        found = self._resolve(data.path if data is not None else None)
        engine = ctx.engine
        out = ctx.outputs["examples"]
        ds, report = read_source(engine, found.source)
        rejected = 0
        if report is not None:
            rejected = report.rejects.num_rows
            self._check_rejects(report.rejects, report.rows, p["max_reject_fraction"], out.file("rejects.csv"),
                                ctx.log)
        columns = {f.name: str(f.type) for f in engine.schema(ds)}
        if p["key"] is not None and p["key"] not in columns:
            raise DataError(f"split key column {p['key']!r} is not in the input {found.where()}; "
                            f"columns are: {', '.join(columns)}")
        if found.pattern is not None and len(found.spans) == 1:
            _check_against_previous_span(ctx, found, columns)
        assign = SplitAssigner(p["splits"], p["key"], p["seed"])
        written = engine.write_partitioned(ds, out.path, SPLIT_COLUMN, fn=assign)
        counts = {name: written[name].rows if name in written else 0 for name in p["splits"]}
        total = sum(counts.values())
        if total == 0:
            what = f"span {found.span!r} of {found.pattern!r} ({found.where()})" if found.pattern else found.where()
            raise DataError(f"input {what} has no data rows")
        ctx.log.info("wrote %s rows: %s (rejected %d malformed rows)", f"{total:,}", counts, rejected)
        out.properties.update({
            "splits": counts, "rows": total, "rejected_rows": rejected, "columns": columns,
            "source": found.describe(), "format": _format(found.source),
            "summary": f"{total:,} rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
        })
        if isinstance(found.source, FileSource):
            out.properties["files"] = list(found.source.files)
        if found.pattern is not None:
            out.properties.update({"span": found.span, "spans": found.spans})

    @staticmethod
    def _check_rejects(rejects: pa.Table, good_rows: int, max_fraction: float, path: str, log: Any) -> None:
        if rejects.num_rows == 0:
            return
        pacsv.write_csv(rejects, path)
        for row in rejects.slice(0, 1000).to_pylist():
            log.warning("rejected %s line %s column %s: %s", row["file"], row["line"], row["column"], row["message"])
        fraction = rejects.num_rows / max(1, rejects.num_rows + good_rows)
        if fraction > max_fraction:
            first = rejects.slice(0, 1).to_pylist()[0]
            raise DataError(
                f"{rejects.num_rows:,} malformed CSV row(s) ({fraction:.2%} of rows, allowed "
                f"{max_fraction:.2%}); first: {first['file']}, line {first['line']}, column "
                f"{first['column']!r}: {first['message']} (row: {first['raw']!r}). Fix the data or raise "
                f"max_reject_fraction; the step log lists the rejected rows")


def _format(source: Any) -> str:
    if isinstance(source, FileSource):
        return source.format
    file_format = getattr(source, "file_format", None)
    return file_format() if callable(file_format) else str(source.describe().get("type", type(source).__name__))


def _check_against_previous_span(ctx: StepContext, found: ResolvedInput, columns: dict[str, str]) -> None:
    """Fail when a column is missing or changed type since the previous span of the same input.

    The previous span is the newest Examples of this pipeline, read from the same
    ``{span}`` pattern, whose span sorts before this one (metadata store, read-only).
    """
    if ctx.store is None:
        return
    current = found.span

    def earlier(props: dict[str, Any]) -> bool:
        span = props.get("span")
        if (props.get("source") or {}).get("pattern") != found.pattern or span is None or span == current:
            return False
        key = span_sort_key([span, current])
        return key(span) < key(current)

    previous = ctx.store.latest_artifact("Examples", ctx.pipeline, "examples", where=earlier)
    if previous is None:
        return
    before = previous.properties.get("columns") or {}
    file = found.source.files[0]  # every file of a span has the same types (checked on read)
    for column, old in before.items():
        if column not in columns:
            raise DataError(f"span {current!r}: column {column!r} is missing in {file} (span "
                            f"{previous.properties['span']!r} had it, type {old}); restore the column, or "
                            f"ingest under a new pattern if the schema change is intended")
        if columns[column] != old:
            raise DataError(f"span {current!r}: column {column!r} is {columns[column]} in {file} but was {old} "
                            f"in span {previous.properties['span']!r}; fix the data, or cast the column to {old}")
    added = [c for c in columns if c not in before]
    if added:
        ctx.log.warning("span %s adds column(s) %s not in span %s", current, added, previous.properties["span"])
