"""sluice.stats schema: inference from statistics, YAML round trip, importing a hand-edited file."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.engine import get_engine
from sluice.stats import FeatureSchema, Schema, compute, infer_schema, validate


@pytest.fixture(scope="module")
def stats(tmp_path_factory):
    engine = get_engine("local")
    n = 200
    table = pa.table({
        "age": pa.array([18 + i % 60 for i in range(n)]),
        "income": pa.array([None if i % 10 == 0 else 1000.5 * i for i in range(n)]),
        "city": pa.array(["Paris", "Lyon", "Nice", "Lyon"] * (n // 4)),
        "user_id": pa.array([f"u{i}" for i in range(n)]),
        "clicked": pa.array([i % 3 == 0 for i in range(n)]),
    })
    path = tmp_path_factory.mktemp("schema") / "train.parquet"
    pq.write_table(table, path)
    return compute(engine, engine.read_parquet([str(path)]), split="train")


def test_infer_schema(stats):
    schema = infer_schema(stats, max_domain_size=50)
    assert [f.name for f in schema] == ["age", "income", "city", "user_id", "clicked"]
    age, income, city, user, clicked = (schema[n] for n in ["age", "income", "city", "user_id", "clicked"])
    assert (age.type, age.required, age.min_fraction, age.min, age.max) == ("int", True, 1.0, 18, 77)
    assert isinstance(age.min, int)
    assert (income.type, income.required, income.min_fraction) == ("float", False, 0.9)
    assert (income.min, income.max) == (1000.5, 1000.5 * 199)
    assert city.domain == ["Lyon", "Nice", "Paris"] and city.min is None
    assert user.domain is None  # 200 distinct values > max_domain_size
    assert clicked.type == "bool" and clicked.min is None and clicked.domain is None
    assert not any(f.allow_missing or f.strict for f in schema)
    assert len(validate(stats, schema)) == 0  # a schema inferred from data accepts that data


def test_domain_size_is_configurable(stats):
    assert infer_schema(stats, max_domain_size=2)["city"].domain is None
    assert infer_schema(stats, max_domain_size=100)["user_id"].domain is None  # vocabulary_limit is 100
    assert len(infer_schema(stats, max_domain_size=1000)["city"].domain) == 3


def test_yaml_round_trip(stats, tmp_path):
    schema = infer_schema(stats)
    path = schema.save(tmp_path)
    assert path.endswith("schema.yaml")
    text = open(path).read()
    assert text.startswith("# Sluice schema") and "domain: [Lyon, Nice, Paris]" in text
    assert Schema.load(tmp_path) == schema
    assert Schema.load(path) == schema
    assert Schema.from_dict(schema.to_dict()) == schema


def test_hand_edited_schema_import(stats, tmp_path):
    (tmp_path / "curated.yaml").write_text(
        """
# curated by hand
features:
  age:
    type: int
    min: 18
    max: 65          # narrowed on purpose
    strict: true
  city:
    type: string
    domain: [Paris, Lyon, "yes"]
  income: {type: float, required: false, min_fraction: 0.95}
  label:
    type: int
    allow_missing: true
"""
    )
    schema = Schema.load(tmp_path / "curated.yaml")
    assert schema["age"] == FeatureSchema("age", "int", min=18, max=65, strict=True)
    assert schema["city"].domain == ["Paris", "Lyon", "yes"] and schema["city"].required
    assert schema["income"].min_fraction == 0.95 and not schema["income"].required
    assert schema["label"].allow_missing
    anomalies = validate(stats, schema, allow_extra_features=True)
    got = {(a.feature, a.kind, a.severity) for a in anomalies}
    assert got == {("age", "out_of_range", "error"), ("city", "unknown_values", "warning"),
                   ("income", "low_presence", "warning")}


@pytest.mark.parametrize("text, message", [
    ("features:\n  a: {type: integer}\n", "type must be one of"),
    ("features:\n  a: {type: int, maximum: 3}\n", "unknown setting(s) maximum"),
    ("features:\n  a: {required: true}\n", "'type' is required"),
    ("features:\n  a: {type: string, domain: [yes, no]}\n", "quote them"),
    ("features:\n  a: {type: int, min: 5, max: 1}\n", "greater than max"),
    ("features:\n  a: {type: int, min_fraction: 2}\n", "min_fraction must be in [0, 1]"),
    ("nothing: here\n", "'features' mapping"),
    ("features:\n  a: {type: int, drift_threshold: -0.1}\n", "drift_threshold must be a number in [0, 1]"),
    ("features:\n  a: {type: int, skew_threshold: 1.5}\n", "skew_threshold must be a number in [0, 1]"),
    ("features:\n  a: {type: int, skew_threshold: high}\n", "skew_threshold must be a number in [0, 1]"),
])
def test_invalid_schema_files_say_what_is_wrong(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ValueError) as err:
        Schema.load(tmp_path / "bad.yaml")
    assert message in str(err.value) and "bad.yaml" in str(err.value)


def test_html_repr(stats):
    html = infer_schema(stats)._repr_html_()
    assert html.startswith("<table") and "Lyon" in html and "[18, 77]" in html


def test_drift_and_skew_thresholds_are_unset_by_default(stats):
    schema = infer_schema(stats)
    assert all(f.drift_threshold is None and f.skew_threshold is None for f in schema)
    assert "threshold:" not in "".join(line for line in schema.to_yaml().splitlines() if not line.startswith("#"))


def test_thresholds_default_and_yaml_round_trip(stats, tmp_path):
    schema = infer_schema(stats, drift_threshold=0.1, skew_threshold=0.2)
    assert {(f.drift_threshold, f.skew_threshold) for f in schema} == {(0.1, 0.2)}
    schema["city"].drift_threshold = 0.05       # tuned per feature, as a user does in the YAML
    schema["age"].skew_threshold = None
    path = schema.save(tmp_path)
    text = open(path).read()
    assert "#   drift_threshold" in text and "L-infinity" in text and "Jensen-Shannon" in text  # the header explains
    assert "drift_threshold: 0.05" in text
    loaded = Schema.load(path)
    assert loaded == schema
    assert loaded["city"].drift_threshold == 0.05 and loaded["age"].skew_threshold is None
    edited = Schema.from_yaml("features:\n  x: {type: float, drift_threshold: 1, skew_threshold: 0}\n")["x"]
    assert (edited.drift_threshold, edited.skew_threshold) == (1.0, 0.0)
    assert isinstance(edited.drift_threshold, float)
    html = schema._repr_html_()
    assert "drift" in html and "0.05" in html
