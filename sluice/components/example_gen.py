"""ExampleGen: raw files in, Parquet shards per split out.

Splits are deterministic: each row's split is chosen from a stable hash of its
key column (or of the whole row) and a seed (:mod:`sluice.io.split_assignment`), computed
by one Arrow batch function on every engine, so the same data always lands in
the same split, on any engine and however the files are cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.dsl.artifacts import Examples, RawData
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import DataError
from sluice.io.files import FileSource
from sluice.io.split_assignment import SPLIT_COLUMN, SplitAssigner

DEFAULT_SPLITS = {"train": 0.8, "eval": 0.2}


class ExampleGen(Component):
    """Ingest CSV, Parquet or JSON-lines files (paths, directories or globs) into split Examples.

    Example::

        gen = ExampleGen(input="data/clicks-*.csv", splits={"train": 0.8, "eval": 0.2}, key="user_id")
        StatisticsGen(examples=gen.outputs.examples)

    ``input`` may also be another step's :class:`RawData` output. Malformed CSV
    rows are written to ``rejects.csv`` in the artifact with file and line;
    the step fails when they exceed ``max_reject_fraction`` of the rows.
    """

    INPUTS = {"data": InputSpec(RawData, optional=True)}
    OUTPUTS = {"examples": Examples}
    VERSION = "2"  # 2: splits from a stable Arrow hash (same on every engine)

    def __init__(self, input: str | Sequence[str] | Channel, *, splits: Mapping[str, float] | None = None,
                 key: str | None = None, seed: int = 0, format: str | None = None,
                 max_reject_fraction: float = 0.0, name: str | None = None, cache: bool = True) -> None:
        channel = input if isinstance(input, Channel) else None
        params: dict[str, Any] = {
            "paths": None if channel else ([input] if isinstance(input, str) else list(input)),
            "splits": dict(splits or DEFAULT_SPLITS), "key": key, "seed": seed, "format": format,
            "max_reject_fraction": max_reject_fraction,
        }
        super().__init__(name=name, inputs={"data": channel}, params=params, cache=cache)

    def external_fingerprint(self) -> str | None:
        # New, removed, resized or touched files change the fingerprint: never serve stale data.
        paths = self.params["paths"]
        return FileSource.resolve(paths, self.params["format"]).fingerprint() if paths else None

    def execute(self, ctx: StepContext) -> None:
        p = ctx.params
        data = ctx.inputs.get("data")
        source = FileSource.resolve(p["paths"] or [data.path], p["format"])
        columns = source.check_columns()
        if p["key"] is not None and p["key"] not in columns:
            raise DataError(f"split key column {p['key']!r} is not in the input {source.files[0]}; "
                            f"columns are: {', '.join(columns)}")
        engine = ctx.engine
        out = ctx.outputs["examples"]
        rejected = 0
        if source.format == "csv":
            ds, report = engine.read_csv_checked(list(source.files), **source.csv_options())
            rejected = report.rejects.num_rows
            self._check_rejects(report.rejects, report.rows, p["max_reject_fraction"], out.file("rejects.csv"),
                                ctx.log)
        else:
            ds = engine.read_files(list(source.files), source.format)
        assign = SplitAssigner(p["splits"], p["key"], p["seed"])
        written = engine.write_partitioned(ds, out.path, SPLIT_COLUMN, fn=assign)
        counts = {name: written[name].rows if name in written else 0 for name in p["splits"]}
        total = sum(counts.values())
        if total == 0:
            raise DataError(f"input {', '.join(source.files[:3])} has no data rows")
        ctx.log.info("wrote %s rows: %s (rejected %d malformed rows)", f"{total:,}", counts, rejected)
        out.properties.update({
            "splits": counts, "rows": total, "rejected_rows": rejected, "files": list(source.files),
            "format": source.format, "columns": {f.name: str(f.type) for f in engine.schema(ds)},
            "summary": f"{total:,} rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
        })

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
