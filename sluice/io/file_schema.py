"""Checking that the files of one source agree on column names and types.

Engines read many files with the first file's types (DuckDB) or a merged schema
(Spark), so a column that is ``int`` in one file and ``string`` in another
either fails deep inside a scan or, worse, is silently truncated. This module
finds such differences up front and names both files and the column.

Parquet and ORC types come from the file schemas (metadata only); CSV and JSON
types from DuckDB's sniffer (a sample of each file).

Example::

    columns, widened = check_file_types(["a.csv", "b.csv"], "csv", {"delim": ",", "header": True})
    # widened == {"x": "DOUBLE"} when x sniffs as BIGINT in a.csv and DOUBLE in b.csv
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sluice.errors import DataError

_INTEGER = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT"}
_FLOAT = {"FLOAT", "DOUBLE"}


def check_file_types(files: Sequence[str], fmt: str, csv_options: dict[str, object]
                     ) -> tuple[list[str], dict[str, str]]:
    """Column names shared by all files, and CSV columns to read with a wider type.

    Raises :class:`DataError` naming the file and column when a file lacks a
    column, has an extra one, or holds one with an incompatible type.
    """
    with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
        schemas = dict(zip(files, pool.map(lambda f: file_types(f, fmt, csv_options), files)))
    first = files[0]
    reference = schemas[first]
    for f, types in schemas.items():
        missing = [c for c in reference if c not in types]
        extra = [c for c in types if c not in reference]
        if missing or extra:
            what = f"lacks column(s) {missing}" if missing else f"has unexpected column(s) {extra}"
            raise DataError(f"input file {f} {what} compared with {first}; "
                            f"all files of one source must have the same columns")
    widened: dict[str, str] = {}
    for column in reference:
        seen = {f: schemas[f][column] for f in files}
        if len(set(seen.values())) > 1:
            wide = _reconcile(column, seen, fmt, csv_options)
            if wide:
                widened[column] = wide
    return list(reference), widened


def file_types(path: str, fmt: str, csv_options: dict[str, object]) -> dict[str, str]:
    """Column name -> type name of one file (Arrow names for Parquet/ORC, DuckDB names for CSV/JSON)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return {f.name: _arrow_name(f.type) for f in pq.read_schema(path)}
    if fmt == "orc":
        import pyarrow.orc as orc

        return {f.name: _arrow_name(f.type) for f in orc.ORCFile(path).schema}
    import duckdb  # the sniffer reads a sample; it handles quoting, headers and type detection

    with duckdb.connect() as con:
        try:
            rows = con.sql(f"DESCRIBE SELECT * FROM {_reader(path, fmt, csv_options)}").fetchall()
        except duckdb.Error as exc:
            raise DataError(f"cannot read {path} as {fmt}: {exc}") from None
    return {name: typ for name, typ, *_ in rows}


def _reader(path: str, fmt: str, csv_options: dict[str, object], all_varchar: bool = False) -> str:
    if fmt == "json":
        return f"read_json('{_q(path)}')"
    delim = _q(str(csv_options["delim"]))
    extra = ", all_varchar=true" if all_varchar else ""
    return f"read_csv('{_q(path)}', delim='{delim}', header=true, ignore_errors=true{extra})"


def _reconcile(column: str, seen: dict[str, str], fmt: str, csv_options: dict[str, object]) -> str | None:
    """The type to read a column with whose types differ between files, or a DataError."""
    types = set(seen.values())
    if fmt in ("csv", "json"):
        # A sniffer sees a sample: 1 and 1.5 are one numeric column, read as DOUBLE.
        if types <= _INTEGER | _FLOAT:
            return "DOUBLE" if fmt == "csv" else None
        # A column sniffed as VARCHAR may only be empty or NULL in that file: accept it when
        # every value there parses as the other files' type.
        typed = types - {"VARCHAR"}
        if fmt == "csv" and len(typed) == 1 and "VARCHAR" in types:
            target = typed.pop()
            bad = {f: _first_unparsable(f, column, target, csv_options) for f, t in seen.items() if t == "VARCHAR"}
            offending = {f: v for f, v in bad.items() if v is not None}
            if not offending:
                return target
            f, value = next(iter(offending.items()))
            other = next(g for g, t in seen.items() if t == target)
            raise DataError(f"column {column!r} has type {target} in {other} but text in {f} (e.g. value "
                            f"{value!r}); all files of one source must hold the same column types: fix {f} "
                            f"or convert the column in every file")
    files = list(seen)
    a = files[0]
    b = next(f for f in files if seen[f] != seen[a])
    raise DataError(f"column {column!r} has type {seen[a]} in {a} but {seen[b]} in {b}; all files of one "
                    f"source must hold the same column types: rewrite {b} (or {a}) with one type")


def _first_unparsable(path: str, column: str, target: str, csv_options: dict[str, object]) -> str | None:
    import duckdb

    col = '"' + column.replace('"', '""') + '"'
    with duckdb.connect() as con:
        row = con.sql(f"SELECT {col} FROM {_reader(path, 'csv', csv_options, all_varchar=True)} "
                      f"WHERE {col} IS NOT NULL AND TRY_CAST({col} AS {target}) IS NULL LIMIT 1").fetchone()
    return None if row is None else row[0]


def _arrow_name(typ: object) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_large_string(typ):
        typ = pa.string()
    return str(typ)


def _q(path: str) -> str:
    return os.fspath(path).replace("'", "''")
