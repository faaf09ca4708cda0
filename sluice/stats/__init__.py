"""Data statistics, schemas and validation (the TFDV equivalent).

Example::

    from sluice.engine import get_engine
    from sluice import stats

    engine = get_engine("local")
    train = stats.compute(engine, engine.read_parquet(["train.parquet"]), split="train")
    schema = stats.infer_schema(train)
    schema.save("schema.yaml")                      # review, edit, commit
    anomalies = stats.validate(stats.compute(engine, serving_ds, split="serving"),
                               stats.Schema.load("schema.yaml"))
    print(anomalies.summary())

    # drift between spans and training/serving skew, for features with thresholds in the schema
    schema = stats.infer_schema(train, drift_threshold=0.1, skew_threshold=0.1)
    stats.validate(today, schema, previous=yesterday, serving=serving_stats).of_kind("drift")
"""

from sluice.stats.anomalies import Anomalies, Anomaly
from sluice.stats.compute import compute, compute_splits
from sluice.stats.drift import Distance, drift_distance, feature_distance, js_divergence, linf_distance
from sluice.stats.schema import FeatureSchema, Schema, infer_schema
from sluice.stats.statistics import (
    DatasetStatistics, FeatureStatistics, Histogram, NumericStatistics, StringStatistics, ValueCount,
    load_splits, save_splits,
)
from sluice.stats.validate import validate

__all__ = [
    "Anomalies", "Anomaly", "DatasetStatistics", "Distance", "FeatureSchema", "FeatureStatistics", "Histogram",
    "NumericStatistics", "Schema", "StringStatistics", "ValueCount", "compute", "compute_splits",
    "drift_distance", "feature_distance", "infer_schema", "js_divergence", "linf_distance", "load_splits", "save_splits", "validate",
]
