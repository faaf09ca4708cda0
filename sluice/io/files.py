"""File sources: CSV, Parquet and JSON-lines files named by paths or globs.

Example::

    source = FileSource.resolve(["data/*.csv"])
    source.format           # 'csv'
    source.fingerprint()    # changes when a file is added, removed, resized or touched
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq

from sluice.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "json", ".ndjson": "json", ".json": "json"}


@dataclass(frozen=True)
class FileSource:
    """A resolved list of data files of one format."""

    files: tuple[str, ...]
    format: str

    @classmethod
    def resolve(cls, patterns: str | Sequence[str], fmt: str | None = None) -> FileSource:
        """Expand paths, directories and globs into files; infer the format from extensions."""
        if isinstance(patterns, str):
            patterns = [patterns]
        files: list[str] = []
        for pattern in patterns:
            if os.path.isdir(pattern):
                matched = [p for p in glob.glob(os.path.join(pattern, "**", "*"), recursive=True)
                           if os.path.isfile(p) and _extension(p) in FORMATS and not _hidden(p, pattern)]
            else:
                matched = sorted(glob.glob(pattern, recursive=True))
            if not matched:
                raise DataError(f"no input files match {pattern!r}; check the path (relative paths are "
                                f"taken from {os.getcwd()})")
            files.extend(sorted(matched))
        formats = {FORMATS.get(_extension(f)) for f in files}
        if fmt is None:
            if None in formats or len(formats) != 1:
                exts = sorted({_extension(f) or "(none)" for f in files})
                raise DataError(f"cannot infer one input format from extensions {exts}; "
                                f"pass format='csv', 'parquet' or 'json'")
            fmt = formats.pop()
        if fmt not in ("csv", "parquet", "json"):
            raise DataError(f"unsupported format {fmt!r}; expected 'csv', 'parquet' or 'json'")
        empty = [f for f in files if os.path.getsize(f) == 0]
        if empty:
            raise DataError(f"input file {empty[0]} is empty (0 bytes); remove it or fill it with data")
        return cls(tuple(files), fmt)

    def csv_options(self) -> dict[str, object]:
        """Parser options for CSV sources: the delimiter from the extension, a header row.

        Fixing them (rather than sniffing) keeps a file with a few malformed
        rows from being misread as one wide column.
        """
        delim = "\t" if all(_extension(f) == ".tsv" for f in self.files) else ","
        return {"delim": delim, "header": True}

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the files, hashed (contents are not read)."""
        from sluice.runner.fingerprint import files_fingerprint

        return files_fingerprint(list(self.files))

    def check_columns(self) -> list[str]:
        """The column names shared by all files; a file missing one of them is an error."""
        columns = {f: _columns(f, self.format, self.csv_options()) for f in self.files}
        first = self.files[0]
        reference = columns[first]
        for f, cols in columns.items():
            missing = [c for c in reference if c not in cols]
            extra = [c for c in cols if c not in reference]
            if missing or extra:
                what = f"lacks column(s) {missing}" if missing else f"has unexpected column(s) {extra}"
                raise DataError(f"input file {f} {what} compared with {first}; "
                                f"all files of one source must have the same columns")
        return reference


def _columns(path: str, fmt: str, csv_options: dict[str, object]) -> list[str]:
    if fmt == "parquet":
        return list(pq.read_schema(path).names)
    if fmt == "csv":
        import duckdb  # the header sniff is a one-line read; DuckDB's sniffer handles quoting

        delim = _q(str(csv_options["delim"]))
        query = f"DESCRIBE SELECT * FROM read_csv('{_q(path)}', delim='{delim}', header=true, ignore_errors=true)"
        return [row[0] for row in duckdb.sql(query).fetchall()]
    import json

    with open(path, encoding="utf-8") as f:
        first = f.readline()
    try:
        return list(json.loads(first))
    except (json.JSONDecodeError, TypeError):
        raise DataError(f"{path}, line 1: expected a JSON object per line") from None


def _q(path: str) -> str:
    return path.replace("'", "''")


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _hidden(path: str, root: str) -> bool:
    return any(part.startswith((".", "_")) for part in os.path.relpath(path, root).split(os.sep))
