"""CSV and JSON-lines on Spark, parsed exactly as the local engine parses them.

Spark's own schema inference differs from DuckDB's (ints vs bigints, JSON
columns sorted by name, quoting rules), so the dialect and column types are
found the way the local engine finds them, with DuckDB's sniffer on the driver
(it reads a sample, not the data), and handed to Spark as an explicit schema.

Malformed CSV rows: Spark parses in ``PERMISSIVE`` mode with a corrupt-record
column, so a short row, a long row and an unparsable value all land there, as
they land in DuckDB's reject table. Spark knows the file of a bad row but not
its line, so the lines are found afterwards by scanning those files on the
driver, only when there are rejects. The files must be readable from the
driver (local paths or a shared mount).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

CORRUPT = "__sluice_corrupt_record"

REJECTS_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int64()), ("column", pa.string()),
                            ("error", pa.string()), ("raw", pa.string()), ("message", pa.string())])

# DuckDB read_csv options that Spark's reader must also honour (the rest only shape the sniff).
_SPARK_OPTION = {"delim": "sep", "sep": "sep", "delimiter": "sep", "header": "header",
                 "nullstr": "nullValue", "quote": "quote", "escape": "escape"}


def _duck_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _duck_options(options: Mapping[str, Any]) -> str:
    from sluice.engine.local import sql_literal

    return "".join(f", {k} = {sql_literal(v)}" for k, v in options.items())


def sniff(paths: Sequence[str], fmt: str, options: Mapping[str, Any]) -> tuple[pa.Schema, dict[str, str]]:
    """The Arrow schema DuckDB reads ``paths`` with, and the Spark reader options that match its dialect."""
    import duckdb

    reader = "read_csv" if fmt == "csv" else "read_json"
    duck = dict(options)
    if fmt == "csv":
        duck["store_rejects"] = True  # what the local engine's checked read sniffs with
    con = duckdb.connect()
    try:
        schema = con.sql(f"SELECT * FROM {reader}({_duck_list(paths)}{_duck_options(duck)}) LIMIT 0").arrow().schema
        if fmt != "csv":
            return schema, {}
        dialect = {k: v for k, v in duck.items() if k in ("delim", "sep", "header", "quote", "escape",
                                                            "store_rejects")}
        sniffed = con.sql(f"SELECT Delimiter, Quote, Escape, HasHeader FROM sniff_csv("
                          f"{_duck_list(paths[:1])[1:-1]}{_duck_options(dialect)})").fetchone()
    finally:
        con.close()
    delim, quote, escape, header = sniffed
    # DuckDB's "(empty)" quote means no quoting at all: Spark turns quoting off with NUL.
    quote = "\u0000" if quote in ("", "(empty)") else quote
    spark = {"sep": delim, "header": "true" if header else "false", "quote": quote,
             "escape": quote if escape in ("", "(empty)") else escape}  # RFC 4180: "" inside quotes
    for key, value in options.items():
        if key in _SPARK_OPTION and key not in ("delim", "sep", "delimiter", "header", "quote", "escape"):
            spark[_SPARK_OPTION[key]] = str(value)
    return schema, spark


def local_path(uri: str) -> str:
    """``file:///a/b%20c.csv`` (Spark's input_file_name) -> ``/a/b c.csv``."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("file", "") else uri


def find_lines(path: str, raws: Counter[str], header: bool) -> list[tuple[int, str]]:
    """Line numbers (1-based, header included, as DuckDB counts) of the rejected raw lines in one file.

    Streams the file once and stops when every rejected line was found.
    """
    wanted = Counter(raws)
    found: list[tuple[int, str]] = []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for number, line in enumerate(f, start=1):
            if number == 1 and header:
                continue
            text = line.rstrip("\r\n")
            if wanted.get(text):
                wanted[text] -= 1
                found.append((number, text))
                if not +wanted:  # +Counter drops the zero counts
                    break
    return found


def explain(raw: str, schema: pa.Schema, sep: str, quote: str) -> tuple[str | None, str, str]:
    """(columns, error kinds, message) for one rejected line, in DuckDB's words."""
    quoting = csv.QUOTE_NONE if quote == "\u0000" else csv.QUOTE_MINIMAL
    tokens = next(csv.reader([raw], delimiter=sep, quotechar=None if quoting == csv.QUOTE_NONE else quote,
                             quoting=quoting), [])
    columns: list[str] = []
    errors: list[str] = []
    messages: list[str] = []
    for name, typ, token in zip(schema.names, schema.types, tokens):
        if token == "" or pa.types.is_string(typ):
            continue
        try:
            pa.array([token]).cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            columns.append(name)
            if "CAST" not in errors:
                errors.append("CAST")
            messages.append(f'Error when converting column "{name}". Could not convert string "{token}" to '
                            f"'{typ}'")
    n = len(schema.names)
    if len(tokens) < n:
        columns.append(schema.names[len(tokens)])
        errors.insert(0, "MISSING COLUMNS")
        messages.append(f"Expected Number of Columns: {n} Found: {len(tokens)}")
    elif len(tokens) > n:
        errors.insert(0, "TOO MANY COLUMNS")
        messages.append(f"Expected Number of Columns: {n} Found: {len(tokens)}")
    if not errors:
        errors, messages = ["PARSE"], [f"Spark could not parse the line with the column types {schema}"]
    return (",".join(dict.fromkeys(columns)) or None), ",".join(errors), "; ".join(messages)


def rejects_table(bad: list[dict[str, Any]], given: Sequence[str], schema: pa.Schema,
                  spark_options: Mapping[str, str]) -> pa.Table:
    """One row per rejected line (file as given, line, column, error, raw, message), ordered by file and line.

    ``bad`` holds Spark's rejected rows: ``file`` (a URI) and ``raw``.
    """
    by_path = {os.path.abspath(p): p for p in given}
    per_file: dict[str, Counter[str]] = {}
    for row in bad:
        per_file.setdefault(local_path(row["file"]), Counter())[row["raw"]] += 1
    header = spark_options.get("header") == "true"
    rows = []
    for path in sorted(per_file, key=lambda p: by_path.get(p, p)):
        found = find_lines(path, per_file[path], header)
        missing = per_file[path] - Counter(raw for _, raw in found)
        found += [(None, raw) for raw in missing.elements()]  # e.g. a quoted field spanning lines
        for line, raw in found:
            column, error, message = explain(raw, schema, spark_options["sep"], spark_options["quote"])
            rows.append({"file": by_path.get(path, path), "line": line, "column": column, "error": error,
                         "raw": raw, "message": message})
    return pa.Table.from_pylist(rows, schema=REJECTS_SCHEMA)
