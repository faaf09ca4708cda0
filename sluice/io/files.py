"""File sources: CSV, Parquet, JSON-lines and ORC files named by paths, directories or globs.

Folders named ``key=value`` (Hive-style partitions, ``data/dt=2026-01-01/part-0.parquet``)
are detected and become columns (``dt``).

Example::

    source = FileSource.resolve(["data/*.csv"])
    source.format               # 'csv'
    source.fingerprint()        # changes when a file is added, removed, resized or touched
    ds = source.read(engine)    # through Engine.read_files / read_csv_checked only
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import DataError
from sluice.io.file_schema import check_file_types

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "json", ".ndjson": "json", ".json": "json", ".orc": "orc"}
FORMAT_NAMES = ("csv", "parquet", "json", "orc")


@dataclass(frozen=True)
class FileSource:
    """A resolved list of data files of one format."""

    files: tuple[str, ...]
    format: str
    # CSV columns whose sniffed types differ between files only as integer vs float: read as
    # DOUBLE everywhere (DuckDB would otherwise apply the first file's types to every file).
    widened: dict[str, str] = field(default_factory=dict, compare=False)

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
        return cls.of_files(files, fmt)

    @classmethod
    def of_files(cls, files: Sequence[str], fmt: str | None = None) -> FileSource:
        """A source over these files (already expanded); the format comes from their extensions."""
        formats = {FORMATS.get(_extension(f)) for f in files}
        if fmt is None:
            if None in formats or len(formats) != 1:
                exts = sorted({_extension(f) or "(none)" for f in files})
                raise DataError(f"cannot infer one input format from extensions {exts}; "
                                f"pass format='csv', 'parquet', 'json' or 'orc'")
            fmt = formats.pop()
        if fmt not in FORMAT_NAMES:
            raise DataError(f"unsupported format {fmt!r}; expected one of {', '.join(FORMAT_NAMES)}")
        empty = [f for f in files if os.path.getsize(f) == 0]
        if empty:
            raise DataError(f"input file {empty[0]} is empty (0 bytes); remove it or fill it with data")
        return cls(tuple(files), fmt)

    @property
    def hive_partitioning(self) -> bool:
        """Whether the files sit in ``key=value`` folders (then those become columns)."""
        return any(_hive_keys(f) for f in self.files)

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

    def describe(self) -> dict[str, Any]:
        """What this source is, for artifact properties."""
        return {"type": "files", "format": self.format, "files": len(self.files),
                "hive_partitioning": self.hive_partitioning}

    def check_columns(self) -> list[str]:
        """The column names shared by all files, after checking names and types agree across files.

        A file lacking a column, or holding it with another type (``int`` in one,
        ``string`` in another), is a :class:`DataError` naming both files and the column.
        """
        columns, widened = check_file_types(list(self.files), self.format, self.csv_options())
        object.__setattr__(self, "widened", widened)
        return columns

    def read(self, engine: Any) -> tuple[Any, Any]:
        """A lazy dataset over the files, and for CSV the malformed-row report (else ``None``).

        Call :meth:`check_columns` first: it decides the types of columns whose
        sniffed types differ between CSV files.
        """
        options: dict[str, Any] = {"hive_partitioning": True} if self.hive_partitioning else {}
        if self.format == "csv":
            options.update(self.csv_options())
            if self.widened:
                options["types"] = dict(self.widened)
            return engine.read_csv_checked(list(self.files), **options)
        return engine.read_files(list(self.files), self.format, **options), None


def _hive_keys(path: str) -> list[str]:
    return [part.split("=", 1)[0] for part in os.path.dirname(path).split(os.sep) if "=" in part]


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _hidden(path: str, root: str) -> bool:
    return any(part.startswith((".", "_")) for part in os.path.relpath(path, root).split(os.sep))
