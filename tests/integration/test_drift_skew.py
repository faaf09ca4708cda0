"""Drift between spans and training/serving skew through a real pipeline and the metadata store.

Each "day" is a run of the same pipeline on a new span. The data comes from a small custom
component that sets the Examples' ``span`` property, as ExampleGen does for incremental data.
City shares are exact (rows are counted, not sampled), so the L-infinity distances are exact.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice import Output, Pipeline, component
from sluice.components.example_validator import ExampleValidator
from sluice.components.schema_gen import SchemaGen
from sluice.components.statistics_gen import StatisticsGen
from sluice.dsl import Examples
from sluice.stats import Anomalies, drift_distance, load_splits

BASE = {"Paris": 50, "Lyon": 30, "Nice": 20}      # percent of rows
SHIFTED = {"Paris": 80, "Lyon": 10, "Nice": 10}   # Paris +30 points: the largest move


def _write_split(directory: str, split: str, cities: dict[str, int], mean: float, seed: int, rows: int) -> None:
    rng = np.random.default_rng(seed)
    city = [c for c, pct in cities.items() for _ in range(rows * pct // 100)]
    rng.shuffle(city)
    os.makedirs(os.path.join(directory, split), exist_ok=True)
    pq.write_table(pa.table({"city": city, "x": rng.normal(mean, 1.0, len(city))}),
                   os.path.join(directory, split, "part-00000.parquet"))


@component
def day_data(examples: Output[Examples], span: str = "1", cities: dict = None, mean: float = 0.0,
             seed: int = 0) -> None:
    """One day of data: train and eval splits, with the span recorded as ExampleGen does."""
    _write_split(examples.path, "train", cities, mean, seed, 2000)
    _write_split(examples.path, "eval", cities, mean, seed + 1, 500)
    examples.properties["span"] = span


@component
def serving_data(examples: Output[Examples], cities: dict = None, seed: int = 7) -> None:
    """Rows logged by the server: one split, ``serving``."""
    _write_split(examples.path, "serving", cities, 0.0, seed, 1000)


def daily(span: str, cities: dict, *, mean: float = 0.0, seed: int = 0, serving: dict | None = None,
          allow_anomalies: bool = True) -> Pipeline:
    data = day_data(span=span, cities=cities, mean=mean, seed=seed)
    stats = StatisticsGen(examples=data.outputs.examples)
    schema = SchemaGen(statistics=stats.outputs.statistics, drift_threshold=0.1, skew_threshold=0.1)
    steps = [data, stats, schema]
    serving_stats = None
    if serving is not None:
        logged = serving_data(cities=serving)
        serving_gen = StatisticsGen(examples=logged.outputs.examples, name="ServingStatisticsGen")
        steps += [logged, serving_gen]
        serving_stats = serving_gen.outputs.statistics
    validator = ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema,
                                 serving_statistics=serving_stats, allow_anomalies=allow_anomalies)
    return Pipeline("daily", [*steps, validator])


def anomalies_of(result) -> tuple[Anomalies, dict]:
    art = result.output("ExampleValidator", "anomalies")
    return Anomalies.load(art.path), art.properties


def train_stats(result):
    return load_splits(result.output("StatisticsGen", "statistics").path)["train"]


def test_shifted_span_reports_drift_with_the_measured_distance(make_runner):
    runner = make_runner()
    day1 = runner.run(daily("1", BASE))
    assert day1.status == "succeeded"
    found, props = anomalies_of(day1)
    assert not found.of_kind("drift") and props["span"] == "1" and props.get("previous_span") is None
    assert day1.output("StatisticsGen", "statistics").properties["span"] == "1"

    failed = runner.run(daily("2", SHIFTED, mean=2.0, allow_anomalies=False))
    assert failed.status == "failed"
    error = failed.steps["ExampleValidator"].error
    assert "drift" in error and "city" in error and "drift_threshold" in error and "allow_anomalies" in error

    day2 = runner.run(daily("2", SHIFTED, mean=2.0))
    found, props = anomalies_of(day2)
    drift = {a.feature: a for a in found.of_kind("drift") if a.split == "train"}
    assert set(drift) == {"city", "x"}
    city = drift["city"]
    assert city.severity == "error" and city.metric == "L-infinity distance"
    assert city.distance == pytest.approx(0.3)
    assert city.distance == pytest.approx(drift_distance(train_stats(day1), train_stats(day2), "city"))
    assert (city.moved_value, city.reference_share, city.compared_share) == ("Paris", 0.5, 0.8)
    assert (city.reference, city.compared) == ("span 1 [train]", "span 2 [train]")
    assert {a.split for a in found.of_kind("drift") if a.feature == "city"} == {"train", "eval"}
    x = drift["x"]
    assert x.metric == "Jensen-Shannon divergence" and x.distance > 0.3
    assert x.distance == pytest.approx(drift_distance(train_stats(day1), train_stats(day2), "x"))
    assert props["previous_span"] == "1" and props["span"] == "2"
    assert props["previous_statistics_id"] == day1.output("StatisticsGen", "statistics").id
    assert props["statistics_id"] == day2.output("StatisticsGen", "statistics").id
    assert props["drift"] == len(found.of_kind("drift"))


def test_same_distribution_no_drift_and_identical_data_keeps_its_span(make_runner):
    runner = make_runner()
    runner.run(daily("1", BASE, seed=1))
    day2 = runner.run(daily("2", BASE, seed=2))
    found, props = anomalies_of(day2)
    assert not found.of_kind("drift") and not found.has_errors, found.summary()
    assert props["previous_span"] == "1"

    # Day 3 has byte-identical data: StatisticsGen reuses day 2's artifact (which says span 2);
    # the validator takes the span from this run's Examples and compares span 3 with span 2.
    day3 = runner.run(daily("3", BASE, seed=2))
    assert day3.steps["StatisticsGen"].state == "cached"
    found, props = anomalies_of(day3)
    assert (props["span"], props["previous_span"]) == ("3", "2") and not found.has_errors


def test_changed_previous_span_is_not_served_from_cache(make_runner):
    runner = make_runner()
    runner.run(daily("1", BASE))
    first = runner.run(daily("2", SHIFTED))
    assert {a.feature for a in anomalies_of(first)[0].of_kind("drift")} == {"city"}

    # Nothing changed: the validator re-checks (cheap), with the same result byte for byte.
    again = runner.run(daily("2", SHIFTED))
    assert again.steps["StatisticsGen"].state == "cached"
    assert again.steps["ExampleValidator"].state == "succeeded"
    assert again.output("ExampleValidator", "anomalies").fingerprint == \
        first.output("ExampleValidator", "anomalies").fingerprint

    # Span 1 is re-ingested with the shifted distribution: span 2 no longer drifts from it.
    runner.run(daily("1", SHIFTED, seed=5))
    after = runner.run(daily("2", SHIFTED))
    assert after.steps["ExampleValidator"].state == "succeeded"
    found, props = anomalies_of(after)
    assert not found.of_kind("drift"), found.summary()
    assert props["previous_statistics_id"] != anomalies_of(first)[1]["previous_statistics_id"]


def test_no_span_means_no_lookup_and_a_normal_cache(make_runner):
    runner = make_runner()
    pipeline = lambda: Pipeline("plain", [d := serving_data(cities=BASE),  # noqa: E731 - data with no span
                                          s := StatisticsGen(examples=d.outputs.examples),
                                          g := SchemaGen(statistics=s.outputs.statistics, split="serving",
                                                         drift_threshold=0.1),
                                          ExampleValidator(statistics=s.outputs.statistics,
                                                           schema=g.outputs.schema)])
    first = runner.run(pipeline())
    assert first.status == "succeeded" and first.output("ExampleValidator", "anomalies").properties["span"] is None
    assert runner.run(pipeline()).steps["ExampleValidator"].state == "cached"


def test_skew_between_training_and_serving_data(make_runner):
    serving = {"Paris": 30, "Lyon": 40, "Nice": 30}  # Paris -20 points: the largest move
    result = make_runner().run(daily("1", BASE, serving=serving))
    found, props = anomalies_of(result)
    skew = found.of_kind("skew")
    assert [a.feature for a in skew] == ["city"], found.summary()
    a = skew[0]
    assert a.severity == "error" and a.metric == "L-infinity distance" and a.distance == pytest.approx(0.2)
    assert (a.moved_value, a.reference_share, a.compared_share) == ("Paris", 0.5, 0.3)
    assert (a.split, a.reference, a.compared) == ("serving", "training data [train]", "serving data [serving]")
    assert "skew_threshold" in a.description
    assert props["serving_statistics_id"] == result.output("ServingStatisticsGen", "statistics").id
    assert props["skew"] == 1

    strict = make_runner().run(daily("1", BASE, serving=serving, allow_anomalies=False))
    assert strict.status == "failed" and "skew" in strict.steps["ExampleValidator"].error
    same = make_runner().run(daily("1", BASE, serving=BASE))
    assert not anomalies_of(same)[0].of_kind("skew")


def _write_day_csv(root: str, day: str, cities: dict[str, int], seed: int, rows: int = 2000) -> None:
    rng = np.random.default_rng(seed)
    city = [c for c, pct in cities.items() for _ in range(rows * pct // 100)]
    rng.shuffle(city)
    folder = os.path.join(root, f"dt={day}")
    os.makedirs(folder)
    pa_table = pa.table({"id": np.arange(len(city)), "city": city, "x": rng.normal(0.0, 1.0, len(city))})
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa_table, os.path.join(folder, "part-0.csv"))


def test_daily_spans_through_example_gen_ingest_only_the_new_day_and_report_drift(make_runner, workdir):
    from sluice.components import ExampleGen

    def pipeline() -> Pipeline:
        gen = ExampleGen(input="days/dt={span}/*.csv", key="id")
        stats = StatisticsGen(examples=gen.outputs.examples)
        schema = SchemaGen(statistics=stats.outputs.statistics, drift_threshold=0.1)
        validator = ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema,
                                     allow_anomalies=True)
        return Pipeline("daily-files", [gen, stats, schema, validator])

    runner = make_runner()
    _write_day_csv("days", "2026-01-01", BASE, seed=1)
    day1 = runner.run(pipeline())
    assert day1.status == "succeeded"
    assert day1.output("ExampleGen", "examples").properties["span"] == "2026-01-01"
    assert anomalies_of(day1)[0].of_kind("drift") == []

    _write_day_csv("days", "2026-01-02", SHIFTED, seed=2)
    day2 = runner.run(pipeline())
    examples = day2.output("ExampleGen", "examples")
    assert examples.properties["span"] == "2026-01-02"
    assert examples.properties["rows"] == 2000          # only the new day, not 4,000
    found, props = anomalies_of(day2)
    assert props["previous_span"] == "2026-01-01"
    drift = {(a.feature, a.split): a for a in found.of_kind("drift")}
    assert ("city", "train") in drift
    # Paris went from 50% to 80% of rows: the largest move, exact up to the split's sampling.
    assert drift[("city", "train")].moved_value == "Paris"
    assert drift[("city", "train")].distance == pytest.approx(0.30, abs=0.03)
