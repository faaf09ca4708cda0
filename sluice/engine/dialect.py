"""Translate the DuckDB SQL that components write into Spark SQL.

Components and libraries write one SQL text, in DuckDB's dialect, over a
relation called ``data``. sqlglot transpiles it; the fixes below correct the
few places where its output would run but mean something else on Spark:

- ``approx_quantile(x, [..])`` becomes ``percentile_approx(x, array(..), ACCURACY)``
  (Spark's default accuracy; relative rank error ``1 / ACCURACY``);
- ``isnan(NULL)`` is NULL in DuckDB but false in Spark, so ``NOT isnan(x)``
  would keep NULL rows: it becomes ``CASE WHEN x IS NULL THEN NULL ELSE isnan(x) END``;
- ``isinf`` / ``isfinite`` have no Spark function: spelled with ``abs(x) = Infinity``;
- ``HUGEINT`` (128-bit) has no Spark type: ``DECIMAL(38, 0)``;
- the table ``data`` is bound to a uniquely named temporary view.

Null ordering (DuckDB sorts NULLs last), ``::`` casts, quoted identifiers,
``//`` integer division, ``md5`` (hex text in both) and string ``length``
(characters in both) are already handled by sqlglot.

Example::

    to_spark('SELECT approx_quantile("x", [0.5]) FROM data', {"data": "sluice_v1"})
    # 'SELECT PERCENTILE_APPROX(`x`, ARRAY(CAST(0.5 AS DOUBLE)), 10000) FROM sluice_v1'
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp

# Spark's default percentile_approx accuracy: relative rank error at most 1/10000.
QUANTILE_ACCURACY = 10_000


def _double(node: exp.Expression) -> exp.Expression:
    return exp.Cast(this=node, to=exp.DataType.build("DOUBLE"))


def _percentile_approx(node: exp.ApproxQuantile) -> exp.Expression:
    points = node.args.get("quantile")
    if isinstance(points, exp.Array):
        points = exp.Anonymous(this="ARRAY", expressions=[_double(p.copy()) for p in points.expressions])
    else:
        points = _double(points.copy())
    return exp.Anonymous(this="PERCENTILE_APPROX",
                         expressions=[node.this.copy(), points, exp.Literal.number(QUANTILE_ACCURACY)])


def _null_if_null(arg: exp.Expression, test: exp.Expression) -> exp.Expression:
    """``CASE WHEN arg IS NULL THEN NULL ELSE test END``: DuckDB's NULL-in, NULL-out."""
    return exp.Case(ifs=[exp.If(this=exp.Is(this=arg.copy(), expression=exp.Null()), true=exp.Null())],
                    default=test)


def _infinite(arg: exp.Expression) -> exp.Expression:
    inf = exp.Cast(this=exp.Literal.string("Infinity"), to=exp.DataType.build("DOUBLE"))
    return exp.EQ(this=exp.Anonymous(this="ABS", expressions=[arg.copy()]), expression=inf)


def _fix(node: exp.Expression) -> exp.Expression:
    """One AST node, rewritten where Spark's meaning would differ from DuckDB's."""
    if isinstance(node, exp.ApproxQuantile):
        return _percentile_approx(node)
    if isinstance(node, exp.IsNan):
        return exp.Paren(this=_null_if_null(node.this, exp.Anonymous(this="ISNAN", expressions=[node.this.copy()])))
    if isinstance(node, exp.IsInf):
        return exp.Paren(this=_null_if_null(node.this, _infinite(node.this)))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "isfinite":
        x = node.expressions[0]
        finite = exp.not_(exp.or_(exp.Anonymous(this="ISNAN", expressions=[x.copy()]), _infinite(x)))
        return exp.Paren(this=_null_if_null(x, finite))
    if isinstance(node, exp.DataType) and node.this in (exp.DataType.Type.INT128, exp.DataType.Type.UINT128):
        return exp.DataType.build("DECIMAL(38, 0)")
    return node


def _bind(tree: exp.Expression, tables: Mapping[str, str]) -> exp.Expression:
    """Point references to ``data`` (not a CTE of the same name) at the bound views."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if name in tables and not table.args.get("db") and name not in ctes:
            alias = table.alias or name  # keep `data.x` references resolving
            table.replace(exp.alias_(exp.to_table(tables[name]), alias, table=True))
    return tree


def to_spark(sql: str, tables: Mapping[str, str] | None = None) -> str:
    """DuckDB SQL -> Spark SQL, with table names in ``tables`` replaced by their views.

    Raises ``ValueError`` naming the SQL when sqlglot cannot parse it.
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ValueError(f"cannot translate this SQL from DuckDB to Spark: {exc}\nSQL: {sql}") from None
    tree = tree.transform(_fix, copy=False)
    if tables:
        tree = _bind(tree, tables)
    return tree.sql(dialect="spark")
