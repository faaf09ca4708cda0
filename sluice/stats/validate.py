"""Validate statistics against a schema and report anomalies.

Validation needs no data scan: it compares the statistics (already computed,
exact counts) with the schema, so it is instant whatever the data size. With
the previous span's statistics it also reports drift, and with serving data's
statistics training/serving skew (:mod:`sluice.stats.compare`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sluice.formatting import fmt
from sluice.stats.anomalies import Anomalies, Anomaly, Severity
from sluice.stats.compare import compare
from sluice.stats.schema import FeatureSchema, Schema
from sluice.stats.statistics import DatasetStatistics, FeatureStatistics

# Data of the first type is accepted where the schema says the second: ints are exact floats.
_COMPATIBLE = {("int", "float")}


Stats = DatasetStatistics | Mapping[str, DatasetStatistics]


def validate(stats: Stats, schema: Schema, *, allow_extra_features: bool = False, previous: Stats | None = None,
             serving: Stats | None = None, training_split: str = "train", current_name: str = "current data",
             previous_name: str = "previous span", serving_name: str = "serving data") -> Anomalies:
    """Check statistics (one split, or a mapping of splits) against a schema.

    Reports: ``empty_dataset`` (error), ``missing_feature`` (error, unless the
    schema allows it to be absent), ``type_mismatch`` (error),
    ``missing_values`` in a required feature (error), ``low_presence`` below
    ``min_fraction`` (warning), ``unexpected_feature`` (warning, none with
    ``allow_extra_features``), ``out_of_range`` and ``unknown_values`` beyond
    the domain (warnings; errors for ``strict`` features).

    ``previous`` (the previous span's statistics) adds ``drift`` errors: each
    split is compared with the same split of the previous span, for features
    with a ``drift_threshold``. ``serving`` (statistics of serving data) adds
    ``skew`` errors: the ``training_split`` (or ``stats`` itself when it is
    one dataset) is compared with each serving split, for features with a
    ``skew_threshold``. Both also report ``type_change`` (error; warning for
    int <-> float) and ``comparison_skipped`` (warning: a feature or split
    absent on one side). The ``*_name`` arguments label the datasets in the
    messages, e.g. ``previous_name="span 1"``.

    Example::

        anomalies = validate(compute_splits(engine, {"eval": ds}), Schema.load("schema.yaml"))
        print(anomalies.summary())
        validate(today, schema, previous=yesterday, serving=serving_stats)   # + drift and skew
    """
    current = _by_split(stats)
    found: list[Anomaly] = []
    for split, split_stats in current.items():
        found.extend(_validate_split(split_stats, schema, allow_extra_features, split))
    if previous is not None:
        found.extend(_drift(current, _by_split(previous), schema, current_name, previous_name))
    if serving is not None:
        found.extend(_skew(current, _by_split(serving), schema, training_split, serving_name))
    return Anomalies(found)


def _by_split(stats: Stats) -> dict[str | None, DatasetStatistics]:
    """Statistics by split name; one dataset is keyed by its own split (None when it has none)."""
    if isinstance(stats, DatasetStatistics):
        return {stats.split: stats}
    return {s.split or name: s for name, s in stats.items()}


def _label(name: str, split: str | None) -> str:
    return f"{name} [{split}]" if split else name


def _drift(current: dict[str | None, DatasetStatistics], previous: dict[str | None, DatasetStatistics],
           schema: Schema, current_name: str, previous_name: str) -> list[Anomaly]:
    out: list[Anomaly] = []
    for split, stats in current.items():
        ref, cmp = _label(previous_name, split), _label(current_name, split)
        if split not in previous:
            have = ", ".join(str(s) for s in previous) or "none"
            out.append(Anomaly("comparison_skipped", "warning", None, split, f"split {split!r} in {previous_name}",
                               f"splits {have}", "drift of this split was not measured",
                               reference=previous_name, compared=cmp))
            continue
        out.extend(compare(previous[split], stats, schema, kind="drift", reference_name=ref, compared_name=cmp,
                           split=split))
    return out


def _skew(current: dict[str | None, DatasetStatistics], serving: dict[str | None, DatasetStatistics],
          schema: Schema, training_split: str, serving_name: str) -> list[Anomaly]:
    if training_split in current:
        split: str | None = training_split
    elif len(current) == 1:  # one dataset given: it is the training data
        split = next(iter(current))
    else:
        raise ValueError(f"no {training_split!r} split to compare serving data with; splits: "
                         f"{', '.join(str(s) for s in current)}; pass training_split=")
    reference = _label("training data", split)
    return [a for name, stats in serving.items()
            for a in compare(current[split], stats, schema, kind="skew", reference_name=reference,
                             compared_name=_label(serving_name, name), split=name)]


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
