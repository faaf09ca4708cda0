"""Hive-style partition folders (``dt=2026-01-01/h=5/part-0.parquet``): keys, values and their types.

Types are inferred from the folder values the way DuckDB and Spark do, so a
partition column has the same type whichever reader produced it: all integers
-> int64, all numbers -> float64, all ISO dates -> date32, else string.

Example::

    hive_schema(["dt=2026-01-01/h=5", "dt=2026-01-02/h=7"])   # dt: date32[day], h: int64
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import pyarrow as pa


def hive_values(relative_dir: str) -> dict[str, str]:
    """The ``key=value`` folders of a ``/``-separated relative folder path."""
    pairs = (part.split("=", 1) for part in relative_dir.replace("\\", "/").split("/") if "=" in part)
    return {key: value for key, value in pairs}


def hive_schema(relative_dirs: Iterable[str]) -> pa.Schema:
    """The partition columns found in these folders, with inferred types."""
    values: dict[str, list[str]] = {}
    for d in relative_dirs:
        for key, value in hive_values(d).items():
            values.setdefault(key, []).append(value)
    return pa.schema([(k, infer_type(v)) for k, v in values.items()])


def infer_type(values: list[str]) -> pa.DataType:
    """int64, float64, date32 or string: the narrowest type every value parses as."""
    for typ, parse in ((pa.int64(), int), (pa.float64(), float), (pa.date32(), datetime.date.fromisoformat)):
        try:
            for v in values:
                parse(v)
            return typ
        except ValueError:
            continue
    return pa.string()
