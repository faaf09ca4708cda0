"""Model metrics computed in SQL on an engine, overall and per slice.

Everything runs as aggregate queries over the predictions dataset, so an
evaluation scales like a GROUP BY: nothing is collected into Python but one
row per slice. The binary AUC is exact: the rows are grouped by score, a
window function counts the negatives ranked below each score, and ties share
their average rank (the Mann-Whitney U statistic, equal to sklearn's
``roc_auc_score``). Its numerator is summed as DECIMAL(38, 0), so it is
exact for any row count an engine can hold.

Input checks fail loudly: NULL labels or predictions, binary labels other
than 0/1, and probabilities outside [0, 1] raise :class:`DataError` (an
evaluation silently skipping rows would bless the wrong model).
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from sluice.engine.base import Dataset, Engine
from sluice.errors import DataError
from sluice.evaluate.result import TASKS, CalibrationBucket, EvalResult, SliceMetrics
from sluice.stats.compute import quote

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] for the log loss
_PROB = re.compile(r"^prob_(\d+)$")


def compute_metrics(engine: Engine, predictions: Dataset, task: str, *, label: str = "label",
                    prediction: str = "prediction", slices: Sequence[str] = (), max_slices: int = 50,
                    calibration_buckets: int = 10, model: str | None = None) -> EvalResult:
    """Metrics of a predictions dataset, overall and for each value of each slice feature.

    ``task`` is ``binary`` (``prediction`` = probability of class 1, labels
    0/1 or booleans), ``multiclass`` (``prediction`` = predicted class; with
    ``prob_0 .. prob_<K-1>`` columns the log loss too) or ``regression``.
    Each slice feature keeps its ``max_slices`` most frequent values (ties by
    value); how many were left out is in ``slices_left_out``.

    Example::

        preds = engine.read_parquet(["predictions.parquet"])
        result = compute_metrics(engine, preds, "binary", slices=["country"])
        result.metrics          # {'count': 1000, 'auc': 0.78, 'log_loss': 0.46, ...}
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    schema = engine.schema(predictions)
    missing = [c for c in [label, prediction, *slices] if c not in schema.names]
    if missing:
        raise DataError(f"predictions lack column(s) {', '.join(missing)}; columns: {', '.join(schema.names)}")
    probs = _prob_columns(schema) if task == "multiclass" else []
    _check_inputs(engine, predictions, task, label, prediction, probs)

    def run(group: str, limit: int | None) -> list[dict[str, Any]]:
        sql = _grouped_sql(task, group, quote(label), quote(prediction), probs)
        if limit is not None:
            sql = (f"SELECT * FROM (SELECT *, count(*) OVER () AS slices_total FROM ({sql}) AS m) AS t "
                   f"ORDER BY n DESC, g ASC NULLS LAST LIMIT {int(limit)}")
        return engine.query(predictions, sql).to_pylist()

    overall = run("0", None)
    result = EvalResult(task, _finish(task, overall[0]), label=label, prediction=prediction, model=model)
    for feature in slices:
        rows = run(quote(feature), max_slices)
        result.slices += [SliceMetrics(feature, _plain(r["g"]), _finish(task, r)) for r in rows]
        left_out = (int(rows[0]["slices_total"]) - len(rows)) if rows else 0
        if left_out:
            result.slices_left_out[feature] = left_out
    if task == "binary" and calibration_buckets > 0:
        result.calibration = _calibration(engine, predictions, quote(label), quote(prediction), calibration_buckets)
    return result


def _prob_columns(schema: pa.Schema) -> list[str]:
    """``prob_0 .. prob_<K-1>`` when all are present, else [] (no multiclass log loss)."""
    ids = sorted(int(m.group(1)) for m in map(_PROB.match, schema.names) if m)
    if not ids:
        return []
    if ids != list(range(len(ids))):
        raise DataError(f"probability columns must be prob_0 .. prob_{len(ids) - 1}, found ids {ids}")
    return [f"prob_{k}" for k in ids]


def _check_inputs(engine: Engine, ds: Dataset, task: str, label: str, prediction: str, probs: list[str]) -> None:
    y, p = quote(label), quote(prediction)
    exprs = {"rows": "count(*)", "labels": f"count({y})", "predictions": f"count({p})"}
    if task == "binary":
        exprs["bad_labels"] = f"sum(CASE WHEN CAST({y} AS DOUBLE) IN (0.0, 1.0) OR {y} IS NULL THEN 0 ELSE 1 END)"
        # x - x = 0 rules out NaN: DuckDB answers "NaN <= 1" from Parquet min/max statistics
        # (which skip NaN) as true, and NaN = NaN in DuckDB and Spark.
        finite = f"CAST({p} AS DOUBLE) - CAST({p} AS DOUBLE) = 0"
        exprs["bad_predictions"] = f"sum(CASE WHEN {p} >= 0 AND {p} <= 1 AND {finite} OR {p} IS NULL THEN 0 ELSE 1 END)"
    elif task == "regression":
        # x - x = 0 is false only for NaN and +-inf (NaN - NaN and inf - inf are NaN, and NaN != 0).
        for name, col in (("bad_labels", y), ("bad_predictions", p)):
            finite = f"CAST({col} AS DOUBLE) - CAST({col} AS DOUBLE) = 0"
            exprs[name] = f"sum(CASE WHEN {finite} OR {col} IS NULL THEN 0 ELSE 1 END)"
    elif probs:
        exprs["bad_labels"] = (f"sum(CASE WHEN {y} IS NULL OR (CAST({y} AS DOUBLE) = CAST({y} AS BIGINT) AND {y} >= 0 "
                               f"AND {y} < {len(probs)}) THEN 0 ELSE 1 END)")
    got = engine.aggregate(ds, exprs)
    rows = int(got["rows"])
    if rows == 0:
        raise DataError("the predictions dataset is empty: nothing to evaluate")
    problems = []
    if got["labels"] < rows:
        problems.append(f"{rows - got['labels']} rows have a NULL {label!r}")
    if got["predictions"] < rows:
        problems.append(f"{rows - got['predictions']} rows have a NULL {prediction!r}")
    expected = {"binary": ("0/1 (or booleans)", "probabilities in [0, 1]"),
                "regression": ("finite numbers", "finite numbers"),
                "multiclass": (f"class ids 0 .. {len(probs) - 1} (there are prob_<k> columns)", "")}[task]
    if got.get("bad_labels"):
        problems.append(f"{got['bad_labels']} rows have a {label!r} that is not {expected[0]}")
    if got.get("bad_predictions"):
        problems.append(f"{got['bad_predictions']} rows have a {prediction!r} that is not {expected[1]}")
    if problems:
        raise DataError("cannot evaluate: " + "; ".join(problems) +
                        f". Filter or fix those rows first, e.g. engine.select(ds, "
                        f"'SELECT * FROM data WHERE {label} IS NOT NULL')")


def _grouped_sql(task: str, g: str, y: str, p: str, probs: list[str]) -> str:
    """One row per group ``g`` with the sums the metrics need (``n`` = row count)."""
    if task == "binary":
        rows = f"SELECT {g} AS g, CAST({p} AS DOUBLE) AS p, CAST({y} AS BIGINT) AS y FROM data"
        # Rows grouped by distinct score: each score's positives outrank the negatives scored
        # lower and tie (count half) with the negatives of the same score.
        return f"""
            SELECT g, sum(n) AS n, sum(pos) AS pos, sum(p * n) AS sum_pred,
                   sum(CAST(pos AS DECIMAL(38, 0)) * CAST(2 * neg_below + n - pos AS DECIMAL(38, 0))) AS auc_num,
                   sum(-(pos * ln(c) + (n - pos) * ln(1 - c))) AS sum_loss,
                   sum(CASE WHEN p >= 0.5 THEN pos ELSE n - pos END) AS correct
            FROM (
                SELECT g, p, n, pos, greatest(least(p, {1 - EPS!r}), {EPS!r}) AS c,
                       coalesce(sum(n - pos) OVER (PARTITION BY g ORDER BY p
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS neg_below
                FROM (SELECT g, p, count(*) AS n, sum(y) AS pos FROM ({rows}) AS r GROUP BY g, p) AS by_score
            ) AS ranked
            GROUP BY g"""
    if task == "regression":
        rows = f"SELECT {g} AS g, CAST({y} AS DOUBLE) AS y, CAST({p} AS DOUBLE) AS p FROM data"
        return f"""
            SELECT g, count(*) AS n, sum((p - y) * (p - y)) AS sse, sum(abs(p - y)) AS sae,
                   sum(y) AS sum_label, sum(p) AS sum_pred
            FROM ({rows}) AS r GROUP BY g"""
    prob = ""
    loss = ""
    if probs:
        # The probability given to the true class, normalized by the row's total (as sklearn does).
        pick = " ".join(f"WHEN {k} THEN {quote(c)}" for k, c in enumerate(probs))
        total = " + ".join(quote(c) for c in probs)
        prob = f", CAST((CASE CAST({y} AS BIGINT) {pick} END) AS DOUBLE) / ({total}) AS pt"
        loss = f", sum(-ln(greatest(least(pt, {1 - EPS!r}), {EPS!r}))) AS sum_loss"
    rows = f"SELECT {g} AS g, {y} AS y, {p} AS p{prob} FROM data"
    return f"""
        SELECT g, count(*) AS n, sum(CASE WHEN y = p THEN 1 ELSE 0 END) AS correct{loss}
        FROM ({rows}) AS r GROUP BY g"""


def _div(a: Any, b: Any) -> float | None:
    return float(a) / float(b) if b else None


def _finish(task: str, r: dict[str, Any]) -> dict[str, float | int | None]:
    """Turn one group's sums into metrics."""
    n = int(r["n"])
    if task == "binary":
        pos = int(r["pos"])
        neg = n - pos
        # Exact integer numerator over an exact integer denominator: one rounding in total.
        auc = int(r["auc_num"]) / (2 * pos * neg) if pos and neg else None
        return {"count": n, "positive_rate": pos / n, "mean_prediction": float(r["sum_pred"]) / n,
                "auc": auc, "log_loss": float(r["sum_loss"]) / n, "accuracy": int(r["correct"]) / n,
                "calibration": _div(r["sum_pred"], pos)}
    if task == "regression":
        return {"count": n, "rmse": math.sqrt(float(r["sse"]) / n), "mae": float(r["sae"]) / n,
                "mean_label": float(r["sum_label"]) / n, "mean_prediction": float(r["sum_pred"]) / n}
    out: dict[str, float | int | None] = {"count": n, "accuracy": int(r["correct"]) / n}
    if "sum_loss" in r:
        out["log_loss"] = float(r["sum_loss"]) / n
    return out


def _calibration(engine: Engine, ds: Dataset, y: str, p: str, buckets: int) -> list[CalibrationBucket]:
    """Mean prediction vs observed positive rate in equal-width prediction buckets."""
    sql = f"""
        SELECT b, count(*) AS n, avg(p) AS mean_p, avg(y) AS mean_y FROM (
            SELECT least(CAST(floor(p * {buckets}) AS INTEGER), {buckets - 1}) AS b, p, y
            FROM (SELECT CAST({p} AS DOUBLE) AS p, CAST({y} AS DOUBLE) AS y FROM data) AS r
        ) AS bucketed GROUP BY b ORDER BY b"""
    got = {int(r["b"]): r for r in engine.query(ds, sql).to_pylist()}
    out = []
    for b in range(buckets):
        r = got.get(b)
        out.append(CalibrationBucket(b / buckets, (b + 1) / buckets, int(r["n"]) if r else 0,
                                     float(r["mean_p"]) if r else None, float(r["mean_y"]) if r else None))
    return out


def _plain(value: Any) -> Any:
    """A slice value as a JSON-friendly Python value."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    return str(value)
