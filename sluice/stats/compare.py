"""Drift and skew: compare a feature's distribution in two statistics against the schema's thresholds.

- **drift**: the previous span's statistics (reference) against this span's
  (compared), split by split, with each feature's ``drift_threshold``;
- **skew**: the training data (reference) against serving data (compared),
  with each feature's ``skew_threshold``.

The distance is the L-infinity distance for string features and the
Jensen-Shannon divergence for numeric and bool features
(:func:`sluice.stats.drift.feature_distance`). Features without a threshold
are not measured, as in TFDV; a type change between the two sides is
reported for every schema feature. Nothing here reads data: statistics only.

Example::

    compare(span1["train"], span2["train"], schema, kind="drift",
            reference_name="span 1 [train]", compared_name="span 2 [train]", split="train")
"""

from __future__ import annotations

from typing import Literal

from sluice.formatting import fmt
from sluice.stats.anomalies import Anomaly
from sluice.stats.drift import LINF, Distance, feature_distance
from sluice.stats.schema import FeatureSchema, Schema
from sluice.stats.statistics import DatasetStatistics, FeatureStatistics

Kind = Literal["drift", "skew"]
# Distances are computed from floats: a distance equal to its threshold must not flip on rounding.
_TOLERANCE = 1e-12
_NUMERIC = {"int", "float"}


def compare(reference: DatasetStatistics, compared: DatasetStatistics, schema: Schema, *, kind: Kind,
            reference_name: str, compared_name: str, split: str | None) -> list[Anomaly]:
    """Drift or skew anomalies of ``compared`` relative to ``reference`` (see the module docstring)."""
    where = {"reference": reference_name, "compared": compared_name}
    empty = [name for name, s in ((reference_name, reference), (compared_name, compared)) if s.num_rows == 0]
    if empty:
        return [Anomaly("comparison_skipped", "warning", None, split, f"rows on both sides to measure {kind}",
                        f"no rows in {', '.join(empty)}", f"{kind} was not measured", **where)]
    out: list[Anomaly] = []
    for fs in schema:
        a, b = reference.features.get(fs.name), compared.features.get(fs.name)
        if a is not None and b is not None and a.type != b.type:
            out.append(_type_change(a, b, kind, split, where))
            if {a.type, b.type} != _NUMERIC:
                continue  # a string and a number have no common distribution to measure
        threshold = fs.drift_threshold if kind == "drift" else fs.skew_threshold
        if threshold is None:
            continue
        if a is None or b is None:
            skipped = _absent(fs, a, b, kind, split, where)
            out.extend([skipped] if skipped else [])
            continue
        distance = feature_distance(a, b)
        if distance.value > threshold + _TOLERANCE:
            out.append(_moved(fs.name, distance, threshold, a, b, kind, split, where))
    return out


def _moved(feature: str, d: Distance, threshold: float, a: FeatureStatistics, b: FeatureStatistics,
           kind: Kind, split: str | None, where: dict[str, str]) -> Anomaly:
    seen = f"{fmt(d.value)} between {where['reference']} and {where['compared']}"
    if d.moved_value is not None:
        seen += f"; share of {d.moved_value!r} {d.share_a:.2%} -> {d.share_b:.2%}"
    if kind == "drift":
        advice = (f"the distribution of {feature!r} changed since the previous span; if this change is expected, "
                  f"raise drift_threshold for feature {feature!r} in schema.yaml (or remove it to stop checking)")
    else:
        advice = (f"serving data differs from training data in {feature!r}: check that serving computes the "
                  f"feature as training does; if the difference is expected, raise skew_threshold for feature "
                  f"{feature!r} in schema.yaml")
    if d.metric == LINF and (_top_only(a) or _top_only(b)):
        advice += " (many distinct values: only the top values are compared, so the distance is approximate)"
    return Anomaly(kind, "error", feature, split, f"{d.metric} <= {fmt(threshold)} ({kind}_threshold)", seen,
                   advice, metric=d.metric, distance=d.value, threshold=threshold, moved_value=d.moved_value,
                   reference_share=d.share_a, compared_share=d.share_b, **where)


def _type_change(a: FeatureStatistics, b: FeatureStatistics, kind: Kind, split: str | None,
                 where: dict[str, str]) -> Anomaly:
    numeric = {a.type, b.type} == _NUMERIC  # ints and floats stay comparable: worth a warning only
    advice = ("the column's type changed; fix the data source, or if the change is intended update the "
              "feature's type in schema.yaml" if kind == "drift" else
              "serving data has another type than training data; make serving send the training type")
    return Anomaly("type_change", "warning" if numeric else "error", a.name, split,
                   f"type {a.type} (as in {where['reference']})", f"type {b.type} in {where['compared']}",
                   advice, **where)


def _absent(fs: FeatureSchema, a: FeatureStatistics | None, b: FeatureStatistics | None, kind: Kind,
            split: str | None, where: dict[str, str]) -> Anomaly | None:
    if fs.allow_missing:
        return None  # the schema says the column may be absent (e.g. the label at serving)
    if b is None and kind == "drift":
        return None  # validation of this span already reports it as missing_feature
    side = where["reference"] if a is None else where["compared"]
    return Anomaly("comparison_skipped", "warning", fs.name, split, f"the feature on both sides to measure {kind}",
                   f"no such column in {side}",
                   f"{kind} of {fs.name!r} was not measured; expected for a new feature, otherwise check the data",
                   **where)


def _top_only(f: FeatureStatistics) -> bool:
    return f.string is not None and f.string.value_counts is None
