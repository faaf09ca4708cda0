"""Fitting analyzers: compile them to SQL and run them in as few engine passes as possible.

Each *phase* is at most two scans of the data: one ``engine.aggregate`` with
every numeric statistic over a lazy projection of their inputs (``avg``, ``stddev_pop``, ``min``, ``max``, ``count``,
``approx_quantile``) and one ``engine.query`` counting every vocabulary with
a UNION ALL of per-column ``GROUP BY``s. An analyzer whose input depends on another
analyzer's result (the std in ``zscore(clip(zscore(x), -3, 3))`` needs the
first mean and std) runs one phase later, with the earlier results inlined as
SQL constants. Statistics of a mean-filled column are derived from those of
the column itself (see :func:`derivation`), so most preprocessing functions,
``zscore(fill_missing(x))`` included, need a single phase.

Standard deviations are *population* ones (``stddev_pop``, numpy's default
``ddof=0``). Quantile boundaries are DuckDB's ``approx_quantile`` (T-digest), computed
deterministically (``engine.aggregate(..., deterministic=True)``): the same data fits the same graph.

Example::

    results = run_analyzers(engine, ds, [graph_output_node, ...])
    results["mean(age)"]      # 38.2
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from sluice.engine.base import Dataset, Engine
from sluice.transform.dtypes import vocabulary_type
from sluice.transform.nodes import OPS, AnalyzerSpec, Feature

log = logging.getLogger(__name__)

NUM_ROWS = "num_rows"

# Numeric analyzer kind -> DuckDB aggregate over a DOUBLE expression.
_AGGREGATES = {"mean": "avg({x})", "std": "stddev_pop({x})", "min": "min({x})", "max": "max({x})",
               "count": "count({x})"}


def bound_values(node: Feature, results: dict[str, Any]) -> dict[str, Any]:
    """The fitted values a node's op uses, prepared (defaults applied) by the op."""
    raw = {role: results.get(spec.name) for role, spec in node.analyzers.items()}
    return OPS[node.op].prepare(node, raw)


def to_sql(node: Feature, results: dict[str, Any]) -> str:
    """SQL for an expression, with fitted values inlined as constants."""
    args = [to_sql(i, results) for i in node.inputs]
    return OPS[node.op].to_sql(args, node, bound_values(node, results))


def collect(outputs: Iterable[Feature]) -> list[AnalyzerSpec]:
    """Every analyzer the outputs need, once each, in a stable order."""
    specs: dict[str, AnalyzerSpec] = {}
    seen: set[str] = set()
    for out in outputs:
        for node in out.walk():
            if node.describe() in seen:
                continue
            seen.add(node.describe())
            for spec in node.analyzers.values():
                specs.setdefault(spec.name, spec)
    return list(specs.values())


def derivation(spec: AnalyzerSpec) -> list[AnalyzerSpec] | None:
    """Base analyzers a statistic of ``fill_missing(x)`` (mean fill) follows from, else None.

    Filling with the mean keeps the mean, min and max, and scales the
    population variance by ``count(x) / num_rows``; deriving them saves the
    second pass that ``zscore(fill_missing(x))`` would otherwise need.
    """
    node = spec.input
    if spec.kind not in ("mean", "std", "min", "max") or node.op != "fill_missing" \
            or node.params.get("value") is not None:
        return None
    x = node.inputs[0]
    return [AnalyzerSpec("mean", x)] + ([AnalyzerSpec(spec.kind, x)] if spec.kind != "mean" else [])


def derive(spec: AnalyzerSpec, results: dict[str, Any]) -> float | None:
    """The value of a derivable spec from its base results (see :func:`derivation`)."""
    x = spec.input.inputs[0].describe()
    base = results[f"{spec.kind}({x})"]
    if spec.kind != "std" or base is None or not results.get(NUM_ROWS):
        return base
    return math.sqrt(base * base * results[f"count({x})"] / results[NUM_ROWS])


def phase_of(spec: AnalyzerSpec, memo: dict[str, int]) -> int:
    """1 + the latest phase among analyzers that the spec's input expression uses
    (for a derived spec: the latest phase of its bases)."""
    if spec.name not in memo:
        bases = derivation(spec)
        if bases is not None:
            memo[spec.name] = max(phase_of(b, memo) for b in bases)
        else:
            deps = [a for node in spec.input.walk() for a in node.analyzers.values()]
            memo[spec.name] = 1 + max((phase_of(a, memo) for a in deps), default=0)
    return memo[spec.name]


def numeric_sql(spec: AnalyzerSpec, column: str) -> str:
    """The aggregate computing ``spec`` over a DOUBLE column holding its input."""
    if spec.kind == "quantiles":
        n = spec.params["num_buckets"]
        qs = ", ".join(repr(i / n) for i in range(1, n))
        return f"approx_quantile({column}, [{qs}])"
    return _AGGREGATES[spec.kind].format(x=column)


def vocabulary_sql(inputs: list[tuple[str, str, int | None, int]]) -> str:
    """One query counting values of several expressions: (sql, sql type, limit or None, min count) each.

    Branch ``k`` of a UNION ALL counts ``v{k}``, with every other ``v`` column
    NULL, so ``ORDER BY n DESC, v0, v1 ...`` orders each branch by its own
    values. (GROUPING SETS would hold every hash table at once; the branches
    of a UNION ALL stay within the engine's memory limit.)
    """
    cols = [f"v{k}" for k in range(len(inputs))]
    branches = []
    for k, (sql, _, _, _) in enumerate(inputs):
        values = ", ".join(f"{sql} AS {c}" if j == k else f"CAST(NULL AS {typ}) AS {c}"
                           for j, ((_, typ, _, _), c) in enumerate(zip(inputs, cols)))
        branches.append(f"SELECT {k} AS k, {values}, count(*) AS n FROM data WHERE {sql} IS NOT NULL GROUP BY {sql}")
    keep = " ".join(
        f"WHEN {k} THEN n >= {min_count}" + (f" AND r <= {limit}" if limit is not None else "")
        for k, (_, _, limit, min_count) in enumerate(inputs))
    order = ", ".join(f"{c} ASC" for c in cols)
    return (
        f"SELECT k, {', '.join(cols)}, n, d FROM ("
        f" SELECT *, row_number() OVER (PARTITION BY k ORDER BY n DESC, {order}) AS r,"
        f" count(*) OVER (PARTITION BY k) AS d FROM ({' UNION ALL '.join(branches)}))"
        f" WHERE CASE k {keep} END ORDER BY k, r")


def _clean_number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _run_numeric(engine: Engine, ds: Dataset, specs: list[AnalyzerSpec], results: dict[str, Any],
                 first: bool) -> dict[str, Any]:
    if not specs:
        return {}
    # Each distinct input expression is computed once, in a lazy projection, and
    # aggregated from there: min, max and mean of log1p(x) take one log per row.
    inputs: dict[str, str] = {}
    for s in specs:
        inputs.setdefault(s.input.describe(), f"a{len(inputs)}")
    projection = ", ".join(f"CAST({to_sql(s.input, results)} AS DOUBLE) AS {inputs[s.input.describe()]}"
                           for s in {s.input.describe(): s for s in specs}.values())
    projected = engine.select(ds, f"SELECT {projection} FROM data")
    exprs = {s.name: numeric_sql(s, inputs[s.input.describe()]) for s in specs}
    # Non-null counts ride along with every mean: free in the same scan, useful to read.
    exprs.update({f"count({s.input.describe()})": f"count({inputs[s.input.describe()]})"
                  for s in specs if s.kind == "mean"})
    if first:  # only when there is a scan anyway
        exprs[NUM_ROWS] = "count(*)"
    row = engine.aggregate(projected, exprs, deterministic=True)  # a refit gives the same graph
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name == NUM_ROWS or name.startswith("count("):
            out[name] = int(value or 0)
        elif isinstance(value, (list, tuple)):  # quantile boundaries
            out[name] = sorted({float(v) for v in value if _clean_number(v) is not None})
        else:
            out[name] = _clean_number(value)
    return out


def _run_vocabularies(engine: Engine, ds: Dataset, specs: list[AnalyzerSpec],
                      results: dict[str, Any]) -> dict[str, Any]:
    # Several vocabularies of one expression (different top_k) share one grouping set.
    by_input: dict[str, list[AnalyzerSpec]] = {}
    for s in specs:
        by_input.setdefault(s.input.describe(), []).append(s)
    inputs = []
    for group in by_input.values():
        node = group[0].input
        _, sql_type = vocabulary_type(node.dtype)
        tops = [s.params.get("top_k") for s in group]
        limit = None if None in tops else max(tops)
        min_count = min(s.params.get("frequency_threshold") or 1 for s in group)
        inputs.append((f"CAST({to_sql(node, results)} AS {sql_type})", sql_type, limit, min_count))
    table = engine.query(ds, vocabulary_sql(inputs))
    # Rows come ordered by k: slice each branch's own value column rather than turning the
    # whole (mostly NULL) result into Python rows.
    ks = table.column("k").to_numpy()
    bounds = np.searchsorted(ks, np.arange(len(inputs) + 1))
    counted: list[tuple[list[Any], list[int], int]] = []
    for k in range(len(inputs)):
        rows = table.slice(bounds[k], bounds[k + 1] - bounds[k])
        distinct = int(rows.column("d")[0].as_py()) if rows.num_rows else 0
        counted.append((rows.column(f"v{k}").to_pylist(), rows.column("n").to_pylist(), distinct))
    out: dict[str, Any] = {}
    for (values, counts, distinct), group in zip(counted, by_input.values()):
        for s in group:
            keep = sum(1 for c in counts if c >= (s.params.get("frequency_threshold") or 1))
            if s.params.get("top_k") is not None:
                keep = min(keep, s.params["top_k"])
            out[s.name] = {"values": values[:keep], "counts": counts[:keep], "num_distinct": distinct}
    return out


def run_analyzers(engine: Engine, ds: Dataset, outputs: Iterable[Feature]) -> dict[str, Any]:
    """Fit every analyzer the outputs need; returns analyzer name -> result, plus ``num_rows``.

    Example::

        run_analyzers(engine, ds, [st.zscore(x["age"])])
        # {'mean(age)': 38.2, 'std(age)': 14.1, 'count(age)': 990, 'num_rows': 1000}
    """
    wanted = collect(outputs)
    derived = [s for s in wanted if derivation(s) is not None]
    specs = {s.name: s for s in wanted if derivation(s) is None}
    for s in derived:
        specs.update({b.name: b for b in derivation(s) if b.name not in specs})
    memo: dict[str, int] = {}
    phases = max((phase_of(s, memo) for s in wanted), default=1)
    results: dict[str, Any] = {}
    for phase in range(1, phases + 1):
        current = [s for s in specs.values() if phase_of(s, memo) == phase]
        numeric = [s for s in current if s.kind != "vocabulary"]
        vocab = [s for s in current if s.kind == "vocabulary"]
        log.debug("transform fit phase %d/%d: %d numeric, %d vocabulary analyzers",
                  phase, phases, len(numeric), len(vocab))
        found = _run_numeric(engine, ds, numeric, results, first=NUM_ROWS not in results)
        if vocab:
            found.update(_run_vocabularies(engine, ds, vocab, results))
        results.update(found)
        results.update({s.name: derive(s, results) for s in derived if memo[s.name] == phase})
    return results
