"""Compute dataset statistics on an engine, in three scans of the data.

1. one ``engine.aggregate`` pass for every scalar aggregate of every column
   (count, mean, std, min, max, zeros, quantiles, string lengths ...);
2. one ``engine.aggregate`` pass for the equal-width histograms, which need
   the min and max from pass 1 (``sum(CASE WHEN ...)`` bucket counts);
3. one ``engine.query`` (a UNION ALL of per-column GROUP BYs) that counts the values
   of all string columns at once, ranks them with a window function and
   keeps the top ones; the same query gives exact distinct counts.

Only portable SQL is used (plain aggregates, CASE, window functions, grouping
sets) so the Spark engine can run the same text after dialect translation.
Which results are exact and which approximate is documented in
:mod:`sluice.stats.statistics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from sluice.engine.base import Dataset, Engine
from sluice.stats.statistics import (
    DatasetStatistics, FeatureStatistics, FeatureType, Histogram, NumericStatistics, StringStatistics, ValueCount,
)


def feature_type(arrow_type: pa.DataType) -> FeatureType:
    """The statistics type of an Arrow column type (``other`` for dates, lists, binary ...)."""
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or (
            hasattr(pa.types, "is_string_view") and pa.types.is_string_view(arrow_type)):
        return "string"
    if pa.types.is_dictionary(arrow_type):
        return feature_type(arrow_type.value_type)
    return "other"


def quote(name: str) -> str:
    """Quote a column name as a SQL identifier (DuckDB dialect; translated for Spark)."""
    return '"' + name.replace('"', '""') + '"'


def _value_expr(col: str, typ: FeatureType, arrow_type: pa.DataType) -> str:
    """The numeric value of a column as used by the numeric statistics; NULL when not finite."""
    if typ == "bool":
        return f"CAST({col} AS INTEGER)"
    if typ == "float" and pa.types.is_floating(arrow_type):
        # NaN and +-inf would poison mean/std/histograms; they are counted apart (non_finite).
        return (f"CASE WHEN isnan({col}) OR abs({col}) = CAST('Infinity' AS DOUBLE) THEN NULL "
                f"ELSE CAST({col} AS DOUBLE) END")
    return f"CAST({col} AS DOUBLE)"


def compute(engine: Engine, dataset: Dataset, *, histogram_buckets: int = 10, top_k: int = 10,
            quantiles: int = 10, vocabulary_limit: int = 100, split: str | None = None) -> DatasetStatistics:
    """Compute per-feature statistics of a dataset.

    ``quantiles=10`` gives the deciles (11 points from 0.0 to 1.0; the ends
    are the exact min and max); ``quantiles=1`` skips the quantile sketch,
    the costliest aggregate. String columns with at most
    ``vocabulary_limit`` distinct values keep all their value counts.

    Example::

        from sluice.engine import get_engine
        engine = get_engine("local")
        stats = compute(engine, engine.read_parquet(["train.parquet"]))
        stats["age"].numeric.histogram.counts
    """
    if histogram_buckets < 1 or top_k < 0 or quantiles < 1 or vocabulary_limit < 0:
        raise ValueError("histogram_buckets and quantiles must be >= 1, top_k and vocabulary_limit >= 0")
    schema = engine.schema(dataset)
    columns = [(f.name, feature_type(f.type), f.type) for f in schema]
    points = [i / quantiles for i in range(1, quantiles)]

    # Pass 1: every scalar aggregate of every column. Keys use column positions,
    # so odd column names cannot clash with the key scheme.
    exprs: dict[str, str] = {"rows": "count(*)"}
    for i, (name, typ, arrow_type) in enumerate(columns):
        col = quote(name)
        exprs[f"{i}.count"] = f"count({col})"
        if typ in ("int", "float", "bool"):
            v = _value_expr(col, typ, arrow_type)
            exact = col if typ == "int" else v  # ints keep their exact min/max and sum
            if typ == "float":  # only floats can hold NaN or infinities
                exprs[f"{i}.finite"] = f"count({v})"
            exprs[f"{i}.mean"] = f"avg({exact})"
            exprs[f"{i}.std"] = f"stddev_pop({exact})"
            exprs[f"{i}.min"] = f"min({exact})"
            exprs[f"{i}.max"] = f"max({exact})"
            exprs[f"{i}.zeros"] = f"count_if({exact} = 0)"
            if points and typ != "bool":
                exprs[f"{i}.quantiles"] = f"approx_quantile({v}, [{', '.join(repr(p) for p in points)}])"
        elif typ == "string":
            exprs[f"{i}.min_length"] = f"min(length({col}))"
            exprs[f"{i}.avg_length"] = f"avg(length({col}))"
            exprs[f"{i}.max_length"] = f"max(length({col}))"
            exprs[f"{i}.empty"] = f"count_if({col} = '')"
    agg = engine.aggregate(dataset, exprs)
    num_rows = int(agg["rows"])

    features: dict[str, FeatureStatistics] = {}
    for i, (name, typ, _) in enumerate(columns):
        count = int(agg[f"{i}.count"])
        feature = FeatureStatistics(name, typ, count, num_rows - count)
        if typ in ("int", "float", "bool"):
            feature.numeric = _numeric(agg, i, typ, count, points)
        elif typ == "string":
            feature.string = StringStatistics(
                distinct=0, top_values=[], value_counts=[] if vocabulary_limit else None,
                min_length=_int(agg[f"{i}.min_length"]), avg_length=_float(agg[f"{i}.avg_length"]),
                max_length=_int(agg[f"{i}.max_length"]), empty=int(agg[f"{i}.empty"] or 0))
        features[name] = feature

    _histograms(engine, dataset, columns, features, histogram_buckets)
    _top_values(engine, dataset, columns, features, top_k, vocabulary_limit)
    options = {"histogram_buckets": histogram_buckets, "top_k": top_k, "quantiles": quantiles,
               "vocabulary_limit": vocabulary_limit}
    return DatasetStatistics(num_rows, features, split, options)


def compute_splits(engine: Engine, splits: Mapping[str, Dataset], **options: Any) -> dict[str, DatasetStatistics]:
    """Statistics for several named splits; ``options`` are those of :func:`compute`.

    Example::

        stats = compute_splits(engine, {"train": train_ds, "eval": eval_ds})
        stats["eval"].num_rows
    """
    return {name: compute(engine, ds, split=name, **options) for name, ds in splits.items()}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _numeric(agg: Mapping[str, Any], i: int, typ: FeatureType, count: int, points: list[float]) -> NumericStatistics:
    lo, hi = agg[f"{i}.min"], agg[f"{i}.max"]
    cast = int if typ in ("int", "bool") else float
    lo, hi = (None if lo is None else cast(lo)), (None if hi is None else cast(hi))
    quantiles: list[tuple[float, float]] = []
    if lo is not None and typ != "bool":
        inner = agg.get(f"{i}.quantiles") or []
        # The ends are the exact min and max, not sketch estimates.
        quantiles = [(0.0, float(lo))] + [(p, float(v)) for p, v in zip(points, inner)] + [(1.0, float(hi))]
    return NumericStatistics(
        mean=_float(agg[f"{i}.mean"]), std=_float(agg[f"{i}.std"]), min=lo, max=hi,
        zeros=int(agg[f"{i}.zeros"] or 0), non_finite=count - int(agg.get(f"{i}.finite", count)), quantiles=quantiles)


def _boundaries(lo: float, hi: float, buckets: int) -> list[float]:
    if lo == hi:
        return [lo, hi]  # a constant column: one bucket holding every value
    bounds = [lo + (hi - lo) * j / buckets for j in range(buckets + 1)]
    bounds[-1] = hi  # exactly the max, whatever the rounding
    return bounds


def _histograms(engine: Engine, dataset: Dataset, columns: list[tuple[str, FeatureType, pa.DataType]],
                features: dict[str, FeatureStatistics], buckets: int) -> None:
    """Pass 2: equal-width bucket counts of every numeric column in one aggregate.

    A projection first turns each value into its bucket number with one CASE
    chain (first matching boundary wins), then the aggregate counts bucket
    numbers: cheaper than testing both ends of every bucket for every value.
    Buckets are half-open, the last closed, so they partition the finite
    values exactly (counts sum to ``count - non_finite``).
    """
    projections: list[str] = []
    plans: dict[int, list[float]] = {}
    for i, (name, typ, arrow_type) in enumerate(columns):
        numeric = features[name].numeric
        if numeric is None or numeric.min is None:
            continue
        bounds = [0.0, 0.5, 1.0] if typ == "bool" else _boundaries(float(numeric.min), float(numeric.max), buckets)
        if len(bounds) == 2:  # constant column: nothing to count
            numeric.histogram = Histogram(bounds, [features[name].count - numeric.non_finite])
            continue
        plans[i] = bounds
        v = _value_expr(quote(name), typ, arrow_type)
        n = len(bounds) - 1
        chain = " ".join(f"WHEN {v} < {bounds[j + 1]!r} THEN {j}" for j in range(n - 1))
        projections.append(f"CASE {chain} WHEN {v} IS NOT NULL THEN {n - 1} END AS b{i}")
    if not plans:
        return
    bucketed = engine.select(dataset, f"SELECT {', '.join(projections)} FROM data")
    exprs = {f"{i}.{j}": f"sum(CASE WHEN b{i} = {j} THEN 1 ELSE 0 END)"
             for i, bounds in plans.items() for j in range(len(bounds) - 1)}
    agg = engine.aggregate(bucketed, exprs)
    for i, bounds in plans.items():
        numeric = features[columns[i][0]].numeric
        assert numeric is not None
        numeric.histogram = Histogram(bounds, [int(agg[f"{i}.{j}"] or 0) for j in range(len(bounds) - 1)])


def _top_values(engine: Engine, dataset: Dataset, columns: list[tuple[str, FeatureType, pa.DataType]],
                features: dict[str, FeatureStatistics], top_k: int, vocabulary_limit: int) -> None:
    """Pass 3: value counts of all string columns in one query.

    A UNION ALL of one GROUP BY per column rather than GROUPING SETS: DuckDB
    runs the branches one after another within its memory limit, where
    grouping sets hold every column's hash table at once and run out of memory.
    """
    strings = [(i, quote(name)) for i, (name, typ, _) in enumerate(columns) if typ == "string"]
    if not strings:
        return
    # One more row than the vocabulary limit tells whether the vocabulary is complete.
    keep = max(top_k, vocabulary_limit + 1)
    counts = " UNION ALL ".join(
        f"SELECT {i} AS feature, {col} AS value, count(*) AS n FROM data WHERE {col} IS NOT NULL GROUP BY {col}"
        for i, col in strings)
    sql = f"""
        SELECT feature, value, n, distinct_values FROM (
            SELECT feature, value, n,
                   row_number() OVER (PARTITION BY feature ORDER BY n DESC, value ASC) AS r,
                   count(*) OVER (PARTITION BY feature) AS distinct_values
            FROM ({counts}) AS counts
        ) AS ranked
        WHERE r <= {keep}
        ORDER BY feature, r"""
    rows = engine.query(dataset, sql).to_pylist()
    by_feature: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_feature.setdefault(int(row["feature"]), []).append(row)
    for i, _ in strings:
        s = features[columns[i][0]].string
        assert s is not None
        ranked = by_feature.get(i, [])
        s.distinct = int(ranked[0]["distinct_values"]) if ranked else 0
        counts = [ValueCount(r["value"], int(r["n"])) for r in ranked]
        s.top_values = counts[:top_k]
        s.value_counts = counts if s.distinct <= vocabulary_limit else None
