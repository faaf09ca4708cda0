"""Drift and skew in sluice.stats.validate: exact distances on hand-built statistics; the span lookup."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sluice.stats import (
    Anomalies, DatasetStatistics, FeatureSchema, FeatureStatistics, Histogram, NumericStatistics, Schema,
    StringStatistics, ValueCount, validate,
)


def strings(name: str, counts: dict[str, int], *, top_only: bool = False) -> FeatureStatistics:
    values = [ValueCount(v, c) for v, c in sorted(counts.items(), key=lambda kv: -kv[1])]
    s = StringStatistics(distinct=len(counts), top_values=values[:2] if top_only else values,
                         value_counts=None if top_only else values, min_length=1, avg_length=1.0, max_length=1,
                         empty=0)
    return FeatureStatistics(name, "string", sum(counts.values()), 0, string=s)


def numbers(name: str, boundaries: list[float], counts: list[int], type: str = "float") -> FeatureStatistics:
    n = NumericStatistics(mean=1.0, std=1.0, min=boundaries[0], max=boundaries[-1], zeros=0,
                          histogram=Histogram(boundaries, counts))
    return FeatureStatistics(name, type, sum(counts), 0, numeric=n)


def dataset(*features: FeatureStatistics, split: str | None = "train", rows: int | None = None) -> DatasetStatistics:
    n = rows if rows is not None else max((f.count + f.missing for f in features), default=0)
    return DatasetStatistics(n, {f.name: f for f in features}, split)


def schema(**features: dict) -> Schema:
    return Schema({name: FeatureSchema(name, **kw) for name, kw in features.items()})


def kinds(anomalies: Anomalies) -> list[tuple[str, str, str | None]]:
    return [(a.kind, a.severity, a.feature) for a in anomalies]


PREV_CITY = {"a": 50, "b": 30, "c": 20}
CUR_CITY = {"a": 20, "b": 40, "c": 40}  # a moves 30 points, b 10, c 20


def test_string_drift_reports_linf_distance_and_the_value_that_moved_most():
    sch = schema(city=dict(type="string", drift_threshold=0.1))
    found = validate(dataset(strings("city", CUR_CITY)), sch, previous=dataset(strings("city", PREV_CITY)),
                     current_name="span 2", previous_name="span 1")
    assert kinds(found) == [("drift", "error", "city")]
    a = found.anomalies[0]
    assert a.distance == pytest.approx(0.3) and a.threshold == 0.1 and a.metric == "L-infinity distance"
    assert (a.moved_value, a.reference_share, a.compared_share) == ("a", 0.5, 0.2)
    assert (a.reference, a.compared, a.split) == ("span 1 [train]", "span 2 [train]", "train")
    assert a.expected == "L-infinity distance <= 0.1 (drift_threshold)"
    assert a.seen == "0.3 between span 1 [train] and span 2 [train]; share of 'a' 50.00% -> 20.00%"
    assert "raise drift_threshold for feature 'city' in schema.yaml" in a.description
    assert found.has_errors


def test_distance_at_the_threshold_passes_and_no_threshold_means_no_check():
    prev, cur = dataset(strings("city", PREV_CITY)), dataset(strings("city", CUR_CITY))
    assert len(validate(cur, schema(city=dict(type="string", drift_threshold=0.3)), previous=prev)) == 0
    assert len(validate(cur, schema(city=dict(type="string")), previous=prev)) == 0


def test_numeric_drift_is_the_jensen_shannon_divergence_of_the_histograms():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    expected = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    sch = schema(x=dict(type="float", drift_threshold=0.05))
    found = validate(dataset(numbers("x", [0.0, 1.0, 2.0], [9, 1])), sch,
                     previous=dataset(numbers("x", [0.0, 1.0, 2.0], [5, 5])))
    a = found.anomalies[0]
    assert kinds(found) == [("drift", "error", "x")]
    assert a.distance == pytest.approx(expected) and a.metric == "Jensen-Shannon divergence"
    assert a.moved_value is None and a.reference_share is None
    sch["x"].drift_threshold = 0.2  # above the measured ~0.147
    assert len(validate(dataset(numbers("x", [0.0, 1.0, 2.0], [9, 1])), sch,
                        previous=dataset(numbers("x", [0.0, 1.0, 2.0], [5, 5])))) == 0


def test_type_change_between_spans_names_both_types():
    sch = schema(age=dict(type="int", drift_threshold=0.1))
    found = validate(dataset(strings("age", {"1": 5})), sch, previous=dataset(numbers("age", [0, 1], [5], "int")),
                     current_name="span 2", previous_name="span 1")
    by_kind = {a.kind: a for a in found}
    assert set(by_kind) == {"type_mismatch", "type_change"}  # against the schema, and against the last span
    a = by_kind["type_change"]
    assert (a.severity, a.feature, a.expected, a.seen) == (
        "error", "age", "type int (as in span 1 [train])", "type string in span 2 [train]")


def test_int_to_float_is_a_warning_and_drift_is_still_measured():
    sch = schema(x=dict(type="float", drift_threshold=0.5))
    found = validate(dataset(numbers("x", [0.0, 1.0], [4])), sch,
                     previous=dataset(numbers("x", [5.0, 6.0], [4], "int")))
    assert kinds(found) == [("type_change", "warning", "x"), ("drift", "error", "x")]
    assert found.of_kind("drift")[0].distance == pytest.approx(1.0)  # disjoint supports


def test_features_missing_on_one_side_are_reported_not_crashed_on():
    sch = schema(new=dict(type="string", drift_threshold=0.1), gone=dict(type="float", drift_threshold=0.1),
                 label=dict(type="string", skew_threshold=0.1, allow_missing=True),
                 x=dict(type="float", skew_threshold=0.1))
    cur = dataset(strings("new", {"a": 1}), strings("label", {"y": 1}), numbers("x", [0.0, 1.0], [1]))
    prev = dataset(numbers("gone", [0.0, 1.0], [1]), strings("label", {"y": 1}), numbers("x", [0.0, 1.0], [1]))
    found = validate(cur, sch, previous=prev, serving=dataset(split="serving", rows=1))
    assert sorted(kinds(found)) == [
        ("comparison_skipped", "warning", "new"),     # a new feature: no drift to measure yet
        ("comparison_skipped", "warning", "x"),       # absent from serving, not allowed to be
        ("missing_feature", "error", "gone"),          # this span lacks it: the schema check says so
    ]  # the label may be absent at serving (allow_missing): nothing to say
    new = next(a for a in found if a.feature == "new")
    assert new.seen == "no such column in previous span [train]"


def test_skew_compares_the_training_split_with_each_serving_split():
    sch = schema(city=dict(type="string", skew_threshold=0.1, drift_threshold=0.01))
    stats = {"train": dataset(strings("city", PREV_CITY), split="train"),
             "eval": dataset(strings("city", CUR_CITY), split="eval")}
    serving = dataset(strings("city", {"a": 70, "b": 20, "c": 10}), split="serving")
    found = validate(stats, sch, serving=serving)
    assert kinds(found) == [("skew", "error", "city")]
    a = found.anomalies[0]
    assert a.distance == pytest.approx(0.2) and (a.moved_value, a.compared_share) == ("a", 0.7)
    assert (a.split, a.reference, a.compared) == ("serving", "training data [train]", "serving data [serving]")
    assert a.expected == "L-infinity distance <= 0.1 (skew_threshold)"
    assert "raise skew_threshold for feature 'city' in schema.yaml" in a.description
    with pytest.raises(ValueError, match="no 'training' split"):
        validate(stats, sch, serving=serving, training_split="training")


def test_drift_pairs_splits_and_skips_empty_or_absent_ones():
    sch = schema(city=dict(type="string", drift_threshold=0.1))
    cur = {"train": dataset(strings("city", CUR_CITY), split="train"),
           "eval": dataset(strings("city", CUR_CITY), split="eval")}
    found = validate(cur, sch, previous={"train": dataset(strings("city", PREV_CITY), split="train")})
    assert sorted((a.kind, a.split) for a in found) == [("comparison_skipped", "eval"), ("drift", "train")]
    empty = validate(cur["train"], sch, previous=dataset(strings("city", {}), rows=0))
    assert kinds(empty) == [("comparison_skipped", "warning", None)]
    assert "no rows in previous span [train]" in empty.anomalies[0].seen


def test_top_values_only_is_flagged_as_approximate():
    sch = schema(city=dict(type="string", drift_threshold=0.1))
    found = validate(dataset(strings("city", CUR_CITY, top_only=True)), sch,
                     previous=dataset(strings("city", PREV_CITY)))
    assert "approximate" in found.of_kind("drift")[0].description


def test_drift_anomalies_round_trip_json_and_render(tmp_path):
    sch = schema(city=dict(type="string", drift_threshold=0.1), age=dict(type="int"))
    found = validate(dataset(strings("city", CUR_CITY), numbers("age", [0, 1], [100], "int")), sch,
                     previous=dataset(strings("city", PREV_CITY), numbers("age", [0, 1], [100], "int")))
    found.save(tmp_path)
    assert Anomalies.load(tmp_path) == found
    raw = json.load(open(tmp_path / "anomalies.json"))["anomalies"][0]
    assert raw["distance"] == pytest.approx(0.3) and raw["moved_value"] == "a"
    old = {"format": "sluice.anomalies/1", "anomalies": [{"kind": "missing_values", "severity": "error",
           "feature": "age", "split": "eval", "expected": "x", "seen": "y", "description": ""}]}
    assert "distance" not in Anomalies.from_dict(old).to_dict()["anomalies"][0]  # schema anomalies stay lean
    html = found._repr_html_()
    assert "distribution changes" in html and "L-infinity distance" in html and "50.00%" in html


# -- the metadata store: finding the previous span's statistics -------------------------------------------


def _stats_artifact(store, pipeline, step, span, *, status="succeeded", state="live"):
    run = store.create_run(pipeline)
    ex = store.start_execution(run, step, "StatisticsGen")
    props = {} if span is None else {"span": span}
    aid = store.add_artifact("Statistics", "statistics", f"/a/{pipeline}/{step}/{span}/{ex}", props, "fp", producer=ex,
                             state=state)
    store.finish_execution(ex, status)
    store.finish_run(run, "succeeded")
    return run, ex, aid


def test_previous_span_artifact(store):
    _, _, s1 = _stats_artifact(store, "p", "StatisticsGen", "1")
    _, _, s9 = _stats_artifact(store, "p", "StatisticsGen", "9")
    _, _, s10 = _stats_artifact(store, "p", "StatisticsGen", "10")
    _stats_artifact(store, "p", "OtherStats", "11")                   # another step
    _stats_artifact(store, "q", "StatisticsGen", "11")                # another pipeline
    _stats_artifact(store, "p", "StatisticsGen", "11", status="failed")
    _stats_artifact(store, "p", "StatisticsGen", "11", state="deleted")
    _stats_artifact(store, "p", "StatisticsGen", None)                # no span
    find = store.previous_span_artifact
    assert find("Statistics", "p", "StatisticsGen", "12").id == s10   # numbers: 10 > 9
    assert find("Statistics", "p", "StatisticsGen", "10").id == s9
    assert find("Statistics", "p", "StatisticsGen", "2").id == s1
    assert find("Statistics", "p", "StatisticsGen", "1") is None
    assert find("Examples", "p", "StatisticsGen", "12") is None
    # The same span made again (data re-ingested): the latest one wins.
    _, _, s10b = _stats_artifact(store, "p", "StatisticsGen", "10")
    assert find("Statistics", "p", "StatisticsGen", "12").id == s10b
    # A cached execution that reused another pipeline's artifact counts for this pipeline.
    run = store.create_run("r")
    ex = store.start_execution(run, "StatisticsGen", "StatisticsGen")
    store.record_event(ex, s9, "output", "statistics")
    store.finish_execution(ex, "cached", cached_from=1)
    assert find("Statistics", "r", "StatisticsGen", "12").id == s9


def test_previous_span_artifact_orders_dates_as_text(store):
    _, _, d1 = _stats_artifact(store, "p", "S", "2024-01-31")
    _stats_artifact(store, "p", "S", "2024-02-01")
    assert store.previous_span_artifact("Statistics", "p", "S", "2024-02-01").id == d1


def test_span_order_matches_example_gen():
    from sluice.spans import span_sort_key as span_order

    assert sorted(["10", "9", "1"], key=span_order(["10", "9", "1"])) == ["1", "9", "10"]
    assert sorted(["2024-1-10", "2024-1-9"], key=span_order(["2024-1-10", "2024-1-9"])) == ["2024-1-9", "2024-1-10"]
    assert sorted(["b", "10", "a"], key=span_order(["b", "10", "a"])) == ["10", "a", "b"]
