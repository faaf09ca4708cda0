"""sluice.stats.validate: every anomaly kind is found on crafted data, with severity and texts."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.engine import get_engine
from sluice.stats import Anomalies, FeatureSchema, Schema, compute, compute_splits, validate


@pytest.fixture(scope="module")
def engine():
    return get_engine("local")


def stats_of(engine, tmp_path, table: pa.Table, split: str = "eval"):
    path = tmp_path / f"{split}-{len(list(tmp_path.iterdir()))}.parquet"
    pq.write_table(table, path)
    return compute(engine, engine.read_parquet([str(path)]), split=split)


SCHEMA = Schema({
    "age": FeatureSchema("age", "int", min=18, max=90),
    "score": FeatureSchema("score", "float", min=0.0, max=1.0, strict=True),
    "city": FeatureSchema("city", "string", domain=["Lyon", "Paris"]),
    "note": FeatureSchema("note", "string", required=False, min_fraction=0.5),
})

GOOD = {
    "age": [20, 30, 40, 50],
    "score": [0.1, 0.5, 0.9, 1.0],
    "city": ["Paris", "Lyon", "Paris", "Paris"],
    "note": ["a", None, "b", "c"],
}


def only(anomalies: Anomalies):
    assert len(anomalies) == 1, anomalies.summary()
    return anomalies.anomalies[0]


def test_clean_data_has_no_anomalies(engine, tmp_path):
    anomalies = validate(stats_of(engine, tmp_path, pa.table(GOOD)), SCHEMA)
    assert len(anomalies) == 0 and not anomalies.has_errors and anomalies.summary() == "No anomalies."


def test_missing_feature_is_an_error_unless_allowed(engine, tmp_path):
    data = {k: v for k, v in GOOD.items() if k != "note"}
    a = only(validate(stats_of(engine, tmp_path, pa.table(data)), SCHEMA))
    assert (a.kind, a.severity, a.feature, a.split) == ("missing_feature", "error", "note", "eval")
    assert a.expected == "a string column" and a.seen == "no such column"
    allowing = Schema({**SCHEMA.features, "note": FeatureSchema("note", "string", allow_missing=True)})
    assert len(validate(stats_of(engine, tmp_path, pa.table(data)), allowing)) == 0


def test_unexpected_feature_is_a_warning(engine, tmp_path):
    stats = stats_of(engine, tmp_path, pa.table({**GOOD, "extra": [1, 2, 3, 4]}))
    a = only(validate(stats, SCHEMA))
    assert (a.kind, a.severity, a.feature) == ("unexpected_feature", "warning", "extra")
    assert len(validate(stats, SCHEMA, allow_extra_features=True)) == 0


def test_type_mismatch(engine, tmp_path):
    a = only(validate(stats_of(engine, tmp_path, pa.table({**GOOD, "age": ["20", "30", "40", "50"]})), SCHEMA))
    assert (a.kind, a.severity, a.feature, a.expected, a.seen) == ("type_mismatch", "error", "age", "type int",
                                                                     "type string")


def test_ints_are_accepted_where_floats_are_expected(engine, tmp_path):
    assert len(validate(stats_of(engine, tmp_path, pa.table({**GOOD, "score": [0, 1, 1, 0]})), SCHEMA)) == 0


def test_missing_values_in_required_feature(engine, tmp_path):
    a = only(validate(stats_of(engine, tmp_path, pa.table({**GOOD, "age": [20, None, None, 50]})), SCHEMA))
    assert (a.kind, a.severity, a.feature) == ("missing_values", "error", "age")
    assert a.seen == "2 of 4 rows missing (50.00%)"


def test_low_presence_of_optional_feature(engine, tmp_path):
    a = only(validate(stats_of(engine, tmp_path, pa.table({**GOOD, "note": ["a", None, None, None]})), SCHEMA))
    assert (a.kind, a.severity, a.feature) == ("low_presence", "warning", "note")
    assert "25.00%" in a.seen and "50.00%" in a.expected


def test_out_of_range_warning_and_strict_error(engine, tmp_path):
    anomalies = validate(stats_of(engine, tmp_path, pa.table({**GOOD, "age": [10, 30, 40, 95],
                                                              "score": [0.1, 0.5, 0.9, 1.5]})), SCHEMA)
    by_feature = {a.feature: a for a in anomalies}
    assert set(by_feature) == {"age", "score"}
    assert (by_feature["age"].kind, by_feature["age"].severity) == ("out_of_range", "warning")
    assert by_feature["age"].expected == "values in [18, 90]" and by_feature["age"].seen == "values in [10, 95]"
    assert (by_feature["score"].kind, by_feature["score"].severity) == ("out_of_range", "error")
    assert anomalies.has_errors


def test_unknown_values_with_fraction(engine, tmp_path):
    a = only(validate(stats_of(engine, tmp_path, pa.table({**GOOD, "city": ["Paris", "Nice", "Rome", "Nice"]})),
                      SCHEMA))
    assert (a.kind, a.severity, a.feature) == ("unknown_values", "warning", "city")
    assert a.seen.startswith("75.00% of values outside it") and "'Nice'" in a.seen and "'Rome'" in a.seen


def test_unknown_values_beyond_known_vocabulary_are_a_lower_bound(engine, tmp_path):
    n = 300
    table = pa.table({**{k: v * (n // 4) for k, v in GOOD.items()},
                      "city": ["Paris"] * (n - 150) + [f"c{i}" for i in range(150)]})
    stats = compute(engine, engine.read_parquet([_write(tmp_path, table)]), top_k=2, vocabulary_limit=10)
    a = only(validate(stats, SCHEMA))
    assert a.kind == "unknown_values" and a.seen.startswith("at least ")
    assert "151 distinct values" in a.description


def _write(tmp_path, table):
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path)
    return str(path)


def test_empty_dataset_is_an_error(engine, tmp_path):
    table = pa.table({k: pa.array([], type=pa.table({k: v}).schema.field(k).type) for k, v in GOOD.items()})
    anomalies = validate(stats_of(engine, tmp_path, table), SCHEMA)
    a = only(anomalies)
    assert (a.kind, a.severity, a.feature, a.seen) == ("empty_dataset", "error", None, "0 rows")


def test_splits_summary_and_json(engine, tmp_path):
    good = tmp_path / "good.parquet"
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table(GOOD), good)
    pq.write_table(pa.table({**GOOD, "age": [20, None, 40, 95], "extra": [1, 2, 3, 4]}), bad)
    stats = compute_splits(engine, {"train": engine.read_parquet([str(good)]),
                                    "serving": engine.read_parquet([str(bad)])})
    anomalies = validate(stats, SCHEMA)
    assert {(a.split, a.feature, a.kind) for a in anomalies} == {
        ("serving", "age", "missing_values"), ("serving", "age", "out_of_range"),
        ("serving", "extra", "unexpected_feature")}
    assert len(anomalies.errors) == 1 and len(anomalies.warnings) == 2
    summary = anomalies.summary().splitlines()
    assert summary[0] == "3 anomalies (1 error, 2 warnings)"
    assert summary[1].strip().startswith("ERROR   [serving] age: missing_values: expected no missing values")
    path = anomalies.save(tmp_path / "out")
    assert path.endswith("anomalies.json") and json.load(open(path))["format"] == "sluice.anomalies/1"
    assert Anomalies.load(tmp_path / "out") == anomalies
    html = anomalies._repr_html_()
    assert "<table" in html and "missing_values" in html
