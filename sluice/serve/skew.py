"""The feedback loop from serving back to training: logged serving rows vs the training statistics.

Reads the request log of one model (Parquet files written by :mod:`sluice.serve.request_log`),
computes statistics of the raw features served (columns starting with ``_`` are the
log's own: version, time, predictions) and validates them through the data validator:
schema anomalies in serving data, and skew against the training split for every
feature with a ``skew_threshold`` in the schema (or ``skew_threshold`` for all).
With ``previous_log_dir`` (an earlier window of the log) drift is reported as well.

Example::

    anomalies = validate_serving_log("serving-log/ctr", "artifacts/StatisticsGen/...", "schema.yaml")
    print(anomalies.summary())
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

from sluice.errors import SluiceError


def log_files(log_dir: str) -> list[str]:
    """Complete request-log files under ``log_dir`` (temporary files of a running writer are skipped)."""
    files = [f for f in glob.glob(os.path.join(log_dir, "**", "*.parquet"), recursive=True)
             if not os.path.basename(f).startswith(".")]
    if not files:
        raise SluiceError(f"no request log files under {log_dir}; run sluice serve --request-log DIR and point "
                          "--log-dir at DIR/<model name>")
    return sorted(files)


def serving_statistics(engine: Any, log_dir: str, split: str = "serving") -> Any:
    """Statistics of the raw features in a request log."""
    from sluice.stats import compute
    from sluice.stats.compute import quote

    ds = engine.read_parquet(log_files(log_dir))
    features = [f.name for f in engine.schema(ds) if not f.name.startswith("_")]
    ds = engine.select(ds, f"SELECT {', '.join(quote(c) for c in features)} FROM data")
    return compute(engine, ds, split=split)


def _training(path: str, split: str) -> Any:
    from sluice.stats import DatasetStatistics, load_splits

    if os.path.isfile(path):
        return {split: DatasetStatistics.load(os.path.dirname(path))}
    if os.path.isfile(os.path.join(path, "statistics.json")):
        return {split: DatasetStatistics.load(path)}
    return load_splits(path)


def _schema(path: str, skew_threshold: float | None) -> Any:
    from sluice.stats import Schema

    if os.path.isdir(path):
        found = glob.glob(os.path.join(path, "*.yaml")) + glob.glob(os.path.join(path, "*.json"))
        if not found:
            raise SluiceError(f"no schema file in {path}")
        path = found[0]
    schema = Schema.load(path)
    if skew_threshold is not None:
        schema.features = {name: dataclasses.replace(f, skew_threshold=skew_threshold)
                           for name, f in schema.features.items()}
    return schema


def validate_serving_log(log_dir: str, statistics_path: str, schema_path: str, *, split: str = "train",
                         skew_threshold: float | None = None, previous_log_dir: str | None = None,
                         engine: Any = None) -> Any:
    """Anomalies of the served data: schema checks, skew vs training ``split``, drift vs ``previous_log_dir``.

    A feature absent from every request (the label) is not reported missing.
    """
    from sluice.engine import get_engine
    from sluice.stats import Anomalies, validate

    engine = engine or get_engine("local")
    training = _training(statistics_path, split)
    if split not in training:
        raise SluiceError(f"no {split!r} split in {statistics_path}; splits: {', '.join(training)}")
    schema = _schema(schema_path, skew_threshold)
    served = serving_statistics(engine, log_dir)
    previous = serving_statistics(engine, previous_log_dir) if previous_log_dir else None
    checked = validate(served, schema, previous=previous, current_name="serving data",
                       previous_name="earlier serving data")
    skew = validate(training[split], schema, serving=served)
    found = [a for a in checked if a.kind != "missing_feature"]
    found += [a for a in skew if a.kind in ("skew", "type_change", "comparison_skipped")]
    return Anomalies(found)
