"""Validate statistics against a schema and report anomalies.

Validation needs no data scan: it compares the statistics (already computed,
exact counts) with the schema, so it is instant whatever the data size.
"""

from __future__ import annotations

from collections.abc import Mapping

from sluice.stats._display import fmt
from sluice.stats.anomalies import Anomalies, Anomaly, Severity
from sluice.stats.schema import FeatureSchema, Schema
from sluice.stats.statistics import DatasetStatistics, FeatureStatistics

# Data of the first type is accepted where the schema says the second: ints are exact floats.
_COMPATIBLE = {("int", "float")}


def validate(stats: DatasetStatistics | Mapping[str, DatasetStatistics], schema: Schema, *,
             allow_extra_features: bool = False) -> Anomalies:
    """Check statistics (one split, or a mapping of splits) against a schema.

    Reports: ``empty_dataset`` (error), ``missing_feature`` (error, unless the
    schema allows it to be absent), ``type_mismatch`` (error),
    ``missing_values`` in a required feature (error), ``low_presence`` below
    ``min_fraction`` (warning), ``unexpected_feature`` (warning, none with
    ``allow_extra_features``), ``out_of_range`` and ``unknown_values`` beyond
    the domain (warnings; errors for ``strict`` features).

    Example::

        anomalies = validate(compute_splits(engine, {"eval": ds}), Schema.load("schema.yaml"))
        print(anomalies.summary())
    """
    if isinstance(stats, DatasetStatistics):
        return Anomalies(_validate_split(stats, schema, allow_extra_features, stats.split))
    found: list[Anomaly] = []
    for name, split_stats in stats.items():
        found.extend(_validate_split(split_stats, schema, allow_extra_features, split_stats.split or name))
    return Anomalies(found)


def _validate_split(stats: DatasetStatistics, schema: Schema, allow_extra: bool, split: str | None) -> list[Anomaly]:
    out: list[Anomaly] = []
    if stats.num_rows == 0:
        out.append(Anomaly("empty_dataset", "error", None, split, "at least one row", "0 rows",
                           "the dataset is empty; check the input path and any filters"))
    for fs in schema:
        if fs.name not in stats:
            if not fs.allow_missing:
                out.append(Anomaly("missing_feature", "error", fs.name, split, f"a {fs.type} column",
                                   "no such column", "set allow_missing: true in the schema if it may be absent"))
            continue
        f = stats[fs.name]
        if f.type != fs.type and (f.type, fs.type) not in _COMPATIBLE:
            out.append(Anomaly("type_mismatch", "error", fs.name, split, f"type {fs.type}", f"type {f.type}"))
            continue  # values of another type cannot be compared to the range or domain
        if stats.num_rows:
            out.extend(_check_values(f, fs, split, stats.num_rows))
    if not allow_extra:
        for f in stats:
            if f.name not in schema:
                out.append(Anomaly("unexpected_feature", "warning", f.name, split, "no such column (not in schema)",
                                   f"a {f.type} column", "add it to the schema or pass allow_extra_features=True"))
    return out


def _severity(fs: FeatureSchema) -> Severity:
    return "error" if fs.strict else "warning"


def _check_values(f: FeatureStatistics, fs: FeatureSchema, split: str | None, rows: int) -> list[Anomaly]:
    out: list[Anomaly] = []
    if fs.required and f.missing:
        out.append(Anomaly("missing_values", "error", f.name, split, "no missing values (required)",
                           f"{f.missing} of {rows} rows missing ({f.missing / rows:.2%})"))
    elif not fs.required and f.presence < fs.min_fraction:
        out.append(Anomaly("low_presence", "warning", f.name, split, f"values in >= {fs.min_fraction:.2%} of rows",
                           f"values in {f.presence:.2%} of rows ({f.missing} of {rows} missing)"))
    n = f.numeric
    if n is not None and n.min is not None and (fs.min is not None or fs.max is not None):
        below = fs.min is not None and n.min < fs.min
        above = fs.max is not None and n.max is not None and n.max > fs.max
        if below or above:
            out.append(Anomaly("out_of_range", _severity(fs), f.name, split,
                               f"values in [{fmt(fs.min)}, {fmt(fs.max)}]",
                               f"values in [{fmt(n.min)}, {fmt(n.max)}]"))
    s = f.string
    if s is not None and fs.domain is not None and f.count:
        domain = set(fs.domain)
        # value_counts lists every value when the vocabulary is small; otherwise only the
        # top values are known and the unknown share is a lower bound.
        known = s.value_counts if s.value_counts is not None else s.top_values
        unknown = [v for v in known if v.value not in domain]
        exact = s.value_counts is not None
        # More distinct values than the domain has means some are unknown, even if none is seen.
        if unknown or s.distinct > len(domain):
            unknown_rows = sum(v.count for v in unknown)
            share = f"{'' if exact else 'at least '}{unknown_rows / f.count:.2%} of values"
            examples = ", ".join(repr(v.value) for v in unknown[:10]) or "values outside the top values"
            out.append(Anomaly("unknown_values", _severity(fs), f.name, split,
                               f"values in the domain ({len(domain)} values)",
                               f"{share} outside it: {examples}",
                               "" if exact else f"{s.distinct} distinct values; only the top ones are known"))
    return out
