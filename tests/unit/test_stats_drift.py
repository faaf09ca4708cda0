"""sluice.stats.drift: L-infinity for strings, Jensen-Shannon for numeric histograms."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.engine import get_engine
from sluice.stats import Histogram, compute, drift_distance, js_divergence


@pytest.fixture(scope="module")
def engine():
    return get_engine("local")


def stats_of(engine, tmp_path, name, table):
    pq.write_table(table, tmp_path / name)
    return compute(engine, engine.read_parquet([str(tmp_path / name)]))


def test_linf_distance_of_strings(engine, tmp_path):
    a = stats_of(engine, tmp_path, "a.parquet", pa.table({"c": ["x"] * 50 + ["y"] * 30 + ["z"] * 20}))
    b = stats_of(engine, tmp_path, "b.parquet", pa.table({"c": ["x"] * 20 + ["y"] * 30 + ["w"] * 50}))
    assert drift_distance(a, b, "c") == pytest.approx(0.5)  # shares of x: .5 vs .2, w: 0 vs .5
    assert drift_distance(a, a, "c") == 0.0


def test_js_divergence_of_histograms():
    h = Histogram([0.0, 1.0, 2.0], [10, 0])
    g = Histogram([0.0, 1.0, 2.0], [0, 10])
    assert js_divergence(h, g) == pytest.approx(1.0)  # disjoint supports: the maximum, base 2
    assert js_divergence(h, h) == 0.0
    # Different boundaries: [0, 2) uniform equals two halves [0, 1) + [1, 2).
    assert js_divergence(Histogram([0.0, 2.0], [10]), Histogram([0.0, 1.0, 2.0], [5, 5])) == pytest.approx(0.0)
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    expected = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    assert js_divergence(Histogram([0.0, 1.0, 2.0], [5, 5]), Histogram([0.0, 1.0, 2.0], [9, 1])) == \
        pytest.approx(expected)


def test_numeric_drift_grows_with_shift(engine, tmp_path):
    rng = np.random.default_rng(1)
    base = stats_of(engine, tmp_path, "base.parquet", pa.table({"x": rng.normal(0, 1, 5000)}))
    same = stats_of(engine, tmp_path, "same.parquet", pa.table({"x": rng.normal(0, 1, 5000)}))
    moved = stats_of(engine, tmp_path, "moved.parquet", pa.table({"x": rng.normal(2, 1, 5000)}))
    small, large = drift_distance(base, same, "x"), drift_distance(base, moved, "x")
    assert 0.0 <= small < 0.05 < 0.3 < large <= 1.0
    assert math.isclose(drift_distance(base, moved, "x"), drift_distance(moved, base, "x"), rel_tol=1e-9)


def test_constant_columns(engine, tmp_path):
    a = stats_of(engine, tmp_path, "ca.parquet", pa.table({"x": [3.0] * 10}))
    b = stats_of(engine, tmp_path, "cb.parquet", pa.table({"x": [3.0] * 4}))
    c = stats_of(engine, tmp_path, "cc.parquet", pa.table({"x": [7.0] * 4}))
    assert drift_distance(a, b, "x") == 0.0
    assert drift_distance(a, c, "x") == pytest.approx(1.0)
    # A point mass shares nothing with an interval that merely contains it.
    assert js_divergence(Histogram([3.0, 3.0], [4]), Histogram([0.0, 5.0], [4])) == pytest.approx(1.0)


def test_type_mismatch_raises(engine, tmp_path):
    a = stats_of(engine, tmp_path, "ta.parquet", pa.table({"x": [1, 2]}))
    b = stats_of(engine, tmp_path, "tb.parquet", pa.table({"x": ["1", "2"]}))
    with pytest.raises(ValueError, match="cannot compare"):
        drift_distance(a, b, "x")


def test_feature_distance_names_the_value_that_moved_most(engine, tmp_path):
    from sluice.stats import feature_distance

    a = stats_of(engine, tmp_path, "fa.parquet", pa.table({"c": ["x"] * 50 + ["y"] * 30 + ["z"] * 20}))
    b = stats_of(engine, tmp_path, "fb.parquet", pa.table({"c": ["x"] * 20 + ["y"] * 40 + ["z"] * 40}))
    d = feature_distance(a["c"], b["c"])
    assert (d.metric, d.moved_value, d.share_a, d.share_b) == ("L-infinity distance", "x", 0.5, 0.2)
    assert d.value == pytest.approx(0.3)
    assert feature_distance(a["c"], a["c"]).moved_value is None
