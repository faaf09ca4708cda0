"""SQL database sources: a table or a query, read in parallel key ranges through SQLAlchemy.

Example::

    source = SqlSource("postgresql+psycopg://app@db/shop", table="orders",
                       partition_column="order_id", num_partitions=8)
    ds = engine.read_arrow(source)          # 8 ranges + 1 for NULL keys, read in parallel
    ExampleGen(input=source, key="order_id")

Partitions are ranges of a numeric ``partition_column`` between its min and
max: ``>= lo AND < hi``, the last range closed (``<= max``), plus one partition
for rows whose key is NULL, so every row is read exactly once. Each partition
streams rows with a server-side cursor (``yield_per``) into Arrow batches.

Column types: integers -> int64, floats and NUMERIC/DECIMAL -> float64 (decimals
lose digits beyond float64's ~15-16 significant digits; cast in a ``query`` to
text to keep them exact), text -> string, booleans -> bool, dates -> date32,
timestamps -> timestamp[us] (UTC when the column has a time zone). A table's
types come from its declared columns; a query's from the values of its first
1,000 rows (a column NULL in all of them is read as string).

Partitions are read in separate transactions, so a table written to during the
read is not seen as one snapshot (like Spark's JDBC source). Passwords never
appear in logs, errors, properties or fingerprints: :meth:`SqlSource.describe`
and ``repr`` show the URL with ``***``.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sluice.engine.base import ArrowSource
from sluice.errors import DataError

_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()
_SAMPLE_ROWS = 1000


class SqlSource(ArrowSource):
    """A database table or query, read as Arrow batches in parallel key ranges.

    Example::

        SqlSource("sqlite:///shop.db", table="orders", partition_column="id", num_partitions=4)
        SqlSource(url, query="SELECT id, amount FROM orders WHERE amount > 0", partition_column="id")
    """

    def __init__(self, url: str, table: str | None = None, query: str | None = None,
                 partition_column: str | None = None, num_partitions: int = 4, batch_size: int = 5000) -> None:
        if (table is None) == (query is None):
            raise ValueError("SqlSource needs exactly one of table= or query=")
        if num_partitions < 1:
            raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
        self.url = str(url)  # a string, not an engine: picklable for Spark executors
        self.table = table
        self.query = query
        self.partition_column = partition_column
        self.num_partitions = num_partitions
        self.batch_size = batch_size
        self._schema: pa.Schema | None = None
        self._table_obj: Any = None

    # -- identity -------------------------------------------------------------------------------

    @property
    def safe_url(self) -> str:
        """The URL with the password replaced by ``***``."""
        import sqlalchemy as sa

        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def describe(self) -> dict[str, Any]:
        """What this source is, without secrets: for parameters and artifact properties."""
        return {"type": "sql", "url": self.safe_url, "table": self.table, "query": self.query,
                "partition_column": self.partition_column, "num_partitions": self.num_partitions}

    def __repr__(self) -> str:
        what = f"table={self.table!r}" if self.table else f"query={self.query!r}"
        return f"SqlSource({self.safe_url!r}, {what}, partition_column={self.partition_column!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_schema": None, "_table_obj": None}

    def fingerprint(self) -> str:
        """URL (without password) + table/query + row count + min/max of the partition column.

        An in-place UPDATE that keeps the row count and the key range is not
        detected: run the step with ``cache=False`` to always re-read.
        """
        count, lo, hi = self._stats()
        payload = {**self.describe(), "rows": count, "min": _jsonable(lo), "max": _jsonable(hi)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    # -- ArrowSource ----------------------------------------------------------------------------

    def schema(self) -> pa.Schema:
        if self._schema is None:
            self._schema = self._table_schema() if self.table else self._query_schema()
        return self._schema

    def partitions(self) -> list[dict[str, Any]]:
        """Key ranges ``{"lo", "hi", "last"}`` covering min..max, then ``{"null": True}``."""
        if not self.partition_column:
            return [{"all": True}]
        self._check_partition_column()
        _, lo, hi = self._stats()
        parts: list[dict[str, Any]] = []
        if lo is not None:
            bounds = _bounds(lo, hi, self.num_partitions)
            for i in range(len(bounds) - 1):
                parts.append({"lo": bounds[i], "hi": bounds[i + 1], "last": i == len(bounds) - 2})
        return parts + [{"null": True}]

    def read(self, partition: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        schema = self.schema()
        with self._errors(f"reading partition {partition} of {self._what()}"), self._engine().connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=self.batch_size).execute(
                self._partition_select(partition))
            for rows in result.partitions():
                yield _to_batch(rows, schema)

    # -- internals ------------------------------------------------------------------------------

    def _engine(self) -> Any:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        with _ENGINES_LOCK:  # one engine per URL and process; partitions open their own connections
            if self.url not in _ENGINES:
                _ENGINES[self.url] = sa.create_engine(self.url, poolclass=NullPool)
            return _ENGINES[self.url]

    def _errors(self, doing: str) -> Any:
        return _ScrubbedErrors(self, doing)

    def _base(self) -> str:
        if self.query:
            return f"({self.query.strip().rstrip(';')}) AS sluice_q"
        return ".".join(self._quote(p) for p in self.table.split("."))

    def _quote(self, name: str) -> str:
        return self._engine().dialect.identifier_preparer.quote(name)

    def _selectable(self) -> Any:
        """A typed table (the driver's values are converted per column type) or the query as text."""
        import sqlalchemy as sa

        if self.table:
            return self._reflect()
        return sa.select(sa.text("*")).select_from(sa.text(self._base()))

    def _partition_select(self, partition: dict[str, Any]) -> Any:
        import sqlalchemy as sa

        if self.table:
            table = self._reflect()
            stmt, key = sa.select(table), table.c[self.partition_column] if self.partition_column else None
        else:
            stmt, key = self._selectable(), sa.column(self.partition_column) if self.partition_column else None
        if partition.get("all"):
            return stmt
        if partition.get("null"):
            return stmt.where(key.is_(None))
        upper = key <= partition["hi"] if partition["last"] else key < partition["hi"]
        return stmt.where(key >= partition["lo"], upper)

    def _reflect(self) -> Any:
        import sqlalchemy as sa

        if getattr(self, "_table_obj", None) is None:
            schema_name, _, name = self.table.rpartition(".")
            with self._errors(f"reading the columns of table {self.table!r}"):
                self._table_obj = sa.Table(name, sa.MetaData(), schema=schema_name or None,
                                           autoload_with=self._engine())
        return self._table_obj

    def _stats(self) -> tuple[int, Any, Any]:
        import sqlalchemy as sa

        key = self._quote(self.partition_column) if self.partition_column else "NULL"
        with self._errors(f"counting the rows of {self._what()}"), self._engine().connect() as conn:
            row = conn.execute(sa.text(f"SELECT count(*), min({key}), max({key}) FROM {self._base()}")).one()
        return int(row[0]), row[1], row[2]

    def _table_schema(self) -> pa.Schema:
        return pa.schema([(c.name, _arrow_type(c.type)) for c in self._reflect().columns])

    def _query_schema(self) -> pa.Schema:
        import sqlalchemy as sa

        with self._errors("running the query"), self._engine().connect() as conn:
            sample = sa.select(sa.text("*")).select_from(sa.text(self._base())).limit(_SAMPLE_ROWS)
            result = conn.execute(sample)
            names = list(result.keys())
            rows = result.fetchall()
        return pa.schema([(n, _infer_type([r[i] for r in rows])) for i, n in enumerate(names)])

    def _check_partition_column(self) -> None:
        field = self.schema().field(self.partition_column) if self.partition_column in self.schema().names else None
        if field is None:
            raise DataError(f"partition_column {self.partition_column!r} is not a column of {self._what()}; "
                            f"columns are: {', '.join(self.schema().names)}")
        if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type)):
            raise DataError(f"partition_column {self.partition_column!r} of {self._what()} has type {field.type}; "
                            f"choose an integer or float column (or leave it out to read in one partition)")

    def _what(self) -> str:
        return f"table {self.table!r}" if self.table else "the query"


class _ScrubbedErrors:
    """Turns database errors into DataErrors with the password removed."""

    def __init__(self, source: SqlSource, doing: str) -> None:
        self.source, self.doing = source, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
        import sqlalchemy as sa

        if exc is None or not isinstance(exc, sa.exc.SQLAlchemyError):
            return False
        password = sa.engine.make_url(self.source.url).password
        if isinstance(exc, sa.exc.NoSuchTableError):
            text = f"no table {str(exc)!r} in this database; check the name (schema.table for another schema)"
        else:
            text = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        if password:
            text = text.replace(str(password), "***")
        raise DataError(f"{self.source.safe_url}: {self.doing} failed: {text}") from None


def _bounds(lo: Any, hi: Any, n: int) -> list[Any]:
    """n+1 increasing boundaries from lo to hi (fewer when the range holds fewer integers)."""
    if isinstance(lo, int) and isinstance(hi, int):
        points = [lo + (hi - lo) * i // n for i in range(n)] + [hi]
    else:
        lo, hi = float(lo), float(hi)
        points = [lo + (hi - lo) * i / n for i in range(n)] + [hi]
    out = [points[0]]
    for p in points[1:]:
        if p > out[-1]:
            out.append(p)
    return out if len(out) > 1 else [lo, hi]


def _arrow_type(sa_type: Any) -> pa.DataType:
    try:
        py = sa_type.python_type
    except NotImplementedError:
        return pa.string()
    if py is bool:
        return pa.bool_()
    if py is int:
        return pa.int64()
    if py in (float, decimal.Decimal):
        return pa.float64()
    if py is datetime.datetime:
        return pa.timestamp("us", tz="UTC") if getattr(sa_type, "timezone", False) else pa.timestamp("us")
    if py is datetime.date:
        return pa.date32()
    if py is bytes:
        return pa.binary()
    return pa.string()


def _infer_type(values: list[Any]) -> pa.DataType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.string()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float, decimal.Decimal}:
        return pa.float64()
    if kinds == {datetime.datetime}:
        aware = any(v.tzinfo is not None for v in values if v is not None)
        return pa.timestamp("us", tz="UTC") if aware else pa.timestamp("us")
    if kinds == {datetime.date}:
        return pa.date32()
    if kinds == {bytes}:
        return pa.binary()
    return pa.string()


def _to_batch(rows: list[Any], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    arrays = [pa.array(_convert(values, field.type), type=field.type) for values, field in zip(columns, schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _convert(values: Any, typ: pa.DataType) -> list[Any]:
    # Drivers hand back Decimal for NUMERIC and str for text-typed SQLite cells; Arrow wants
    # the Python type of the column's Arrow type.
    if pa.types.is_floating(typ):
        return [None if v is None else float(v) for v in values]
    if pa.types.is_string(typ):
        return [None if v is None else (v if isinstance(v, str) else str(v)) for v in values]
    if pa.types.is_integer(typ):
        return [None if v is None else int(v) for v in values]
    if pa.types.is_boolean(typ):
        return [None if v is None else bool(v) for v in values]
    if pa.types.is_date(typ):
        return [datetime.date.fromisoformat(v[:10]) if isinstance(v, str) else v for v in values]
    if pa.types.is_timestamp(typ):
        return [datetime.datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
    return list(values)


def _jsonable(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
