"""Column types as the transform sees them, and how they translate between Arrow and SQL.

A fitted graph records each raw column's type by a short name (``float64``,
``int64``, ``string``, ``bool`` ...) so that serving can coerce request values
to exactly what the fit saw. Expressions only care about a coarser *kind*:

- ``number``: ints, floats, bools, decimals and numeric mapper outputs;
- ``string``: any string encoding (plain, large, view, dictionary);
- ``categorical``: int64 ids produced by bucketize / vocabulary / hashing;
- ``other``: anything else (timestamps, lists ...), only carried by passthrough.

Example::

    type_name(pa.large_string())   # 'string'
    kind_of("float32")             # 'number'
    sql_literal(0.1)               # "'0.1'::DOUBLE"
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

ValueKind = Literal["number", "string", "categorical", "other"]

_FLOAT_NAMES = {16: "float16", 32: "float32", 64: "float64"}
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_INTEGER_NAMES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


def type_name(t: pa.DataType) -> str:
    """Short, stable name of an Arrow type (all string encodings are ``string``)."""
    if pa.types.is_dictionary(t):
        return type_name(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_floating(t):
        return _FLOAT_NAMES[t.bit_width]
    return str(t)


def arrow_type(name: str) -> pa.DataType | None:
    """The Arrow type for a short name, or None when the name has no simple alias."""
    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        return None


def is_integer_name(name: str) -> bool:
    return name in _INTEGER_NAMES


def kind_of(name: str) -> ValueKind:
    """The expression kind of a raw column type name."""
    if name == "string":
        return "string"
    if name in _INTEGER_NAMES or name in _FLOAT_NAMES.values() or name == "bool" or name.startswith("decimal"):
        return "number"
    return "other"


def vocabulary_type(name: str) -> tuple[pa.DataType, str]:
    """Arrow and SQL types a vocabulary over a column of type ``name`` stores its values as.

    Integers widen to int64 and floats/decimals to float64 so that values read
    back from JSON (which has one integer and one float type) compare equal.
    """
    if name == "string":
        return pa.string(), "VARCHAR"
    if name == "bool":
        return pa.bool_(), "BOOLEAN"
    if name in _INTEGER_NAMES:
        return pa.int64(), "BIGINT"
    return pa.float64(), "DOUBLE"


def quote_ident(name: str) -> str:
    """A SQL identifier, quoted so any column name is safe."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A DuckDB literal that parses back to exactly ``value``.

    Floats go through a string cast: a bare ``38.2`` is a DECIMAL in DuckDB,
    and ``repr`` of a float round-trips exactly.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value) if math.isfinite(value) else _NON_FINITE[repr(value)]
        return f"'{text}'::DOUBLE"
    return "'" + str(value).replace("'", "''") + "'"


def to_float64(values: pa.Array) -> pa.Array:
    """Numbers (ints, bools, decimals, ids) as float64, the precision every numeric mapper works in.

    Unchecked: an int64 beyond 2**53 rounds rather than failing a whole batch.
    """
    return values if values.type == pa.float64() else pc.cast(values, pa.float64(), safe=False)


def to_text(values: pa.Array) -> pa.Array:
    """Values as large strings, the text a stable hash is computed over.

    Integers and ids render as decimal digits, bools as ``true``/``false``,
    floats with Arrow's shortest round-trip formatting (``1.0`` -> ``1``).
    """
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values if values.type == pa.large_string() else pc.cast(values, pa.large_string())
