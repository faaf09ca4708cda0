"""sluice.stats.compute: values equal numpy/pandas (exact ones exactly, quantiles within their error)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.engine import get_engine
from sluice.stats import DatasetStatistics, compute, compute_splits, load_splits, save_splits


@pytest.fixture(scope="module")
def engine():
    e = get_engine("local")
    yield e
    e.close()


def dataset(engine, tmp_path, table: pa.Table, name: str = "data.parquet"):
    path = tmp_path / name
    pq.write_table(table, path)
    return engine.read_parquet([str(path)])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 5000
    ints = rng.integers(-20, 50, n)
    int_mask = rng.random(n) < 0.1
    floats = rng.lognormal(size=n)
    floats[rng.random(n) < 0.05] = 0.0
    words = rng.choice(["apple", "banana", "cherry", "", "date"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    str_mask = rng.random(n) < 0.02
    flags = rng.random(n) < 0.3
    table = pa.table({
        "i": pa.array(ints, mask=int_mask),
        "f": pa.array(floats, type=pa.float32()),
        "s": pa.array(words, mask=str_mask),
        "b": pa.array(flags),
        "d": pa.array([None] * n, type=pa.date32()),
    })
    path = tmp_path_factory.mktemp("mixed") / "mixed.parquet"
    pq.write_table(table, path)
    return table.to_pandas(), str(path)


@pytest.fixture(scope="module")
def mixed_stats(engine, mixed):
    return compute(engine, engine.read_parquet([mixed[1]]), split="train")


def test_types_counts_and_missing(mixed, mixed_stats):
    df, _ = mixed
    st = mixed_stats
    assert st.num_rows == len(df) and st.split == "train"
    assert {f.name: f.type for f in st} == {"i": "int", "f": "float", "s": "string", "b": "bool", "d": "other"}
    for name in df.columns:
        assert st[name].count == int(df[name].notna().sum())
        assert st[name].missing == int(df[name].isna().sum())
    assert st["d"].numeric is None and st["d"].string is None and st["d"].count == 0


def test_numeric_exact_values(mixed, mixed_stats):
    df, _ = mixed
    for name in ("i", "f"):
        x = df[name].dropna().to_numpy(dtype=np.float64)
        n = mixed_stats[name].numeric
        assert n.mean == pytest.approx(x.mean(), rel=1e-12)
        assert n.std == pytest.approx(x.std(ddof=0), rel=1e-9)  # population std, like numpy's default
        assert n.min == x.min() and n.max == x.max()
        assert n.zeros == int((x == 0).sum())
        assert n.non_finite == 0
    assert isinstance(mixed_stats["i"].numeric.min, int)
    b = mixed_stats["b"].numeric
    assert b.mean == pytest.approx(df["b"].mean()) and b.zeros == int((~df["b"]).sum())
    assert b.histogram.counts == [int((~df["b"]).sum()), int(df["b"].sum())]


def test_histograms_sum_to_count_and_match_numpy(mixed, mixed_stats):
    df, _ = mixed
    for name in ("i", "f"):
        h = mixed_stats[name].numeric.histogram
        x = df[name].dropna().to_numpy(dtype=np.float64)
        assert len(h.counts) == 10 and len(h.boundaries) == 11
        assert sum(h.counts) == mixed_stats[name].count
        assert h.boundaries[0] == x.min() and h.boundaries[-1] == x.max()
        b = h.boundaries
        expected = [int(((x >= b[j]) & (x < b[j + 1])).sum()) for j in range(9)] + [int((x >= b[9]).sum())]
        assert h.counts == expected


def test_quantiles_within_documented_rank_error(mixed, mixed_stats):
    df, _ = mixed
    for name in ("i", "f"):
        x = np.sort(df[name].dropna().to_numpy(dtype=np.float64))
        qs = mixed_stats[name].numeric.quantiles
        assert [q for q, _ in qs] == pytest.approx([k / 10 for k in range(11)])
        assert qs[0][1] == x[0] and qs[-1][1] == x[-1]  # the ends are the exact min and max
        for q, v in qs[1:-1]:
            lo = np.searchsorted(x, v, side="left") / len(x)
            hi = np.searchsorted(x, v, side="right") / len(x)
            rank_error = 0.0 if lo <= q <= hi else min(abs(q - lo), abs(q - hi))
            assert rank_error <= 0.01 + 1 / len(x), (name, q, v)
    assert mixed_stats["f"].numeric.median == qs[5][1]


def test_string_statistics(mixed, mixed_stats):
    df, _ = mixed
    s = df["s"].dropna()
    st = mixed_stats["s"].string
    assert st.distinct == s.nunique() == 5
    counts = s.value_counts()
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    assert [(v.value, v.count) for v in st.top_values] == expected
    assert [(v.value, v.count) for v in st.value_counts] == expected
    lengths = s.str.len()
    assert (st.min_length, st.max_length) == (lengths.min(), lengths.max())
    assert st.avg_length == pytest.approx(lengths.mean(), rel=1e-12)
    assert st.empty == int((s == "").sum())


def test_top_k_ties_ordered_by_value(engine, tmp_path):
    values = ["b"] * 3 + ["a"] * 3 + ["c"] * 3 + ["z"] * 5 + ["y"] * 1 + ["x"] * 1 + [None] * 2
    other = ["q"] * len(values)  # a second string column shares the one value-count query
    ds = dataset(engine, tmp_path, pa.table({"s": values, "t": other}))
    st = compute(engine, ds, top_k=3, vocabulary_limit=4)
    s = st["s"].string
    assert [(v.value, v.count) for v in s.top_values] == [("z", 5), ("a", 3), ("b", 3)]
    assert s.distinct == 6
    assert s.value_counts is None  # 6 distinct values > vocabulary_limit 4
    t = st["t"].string
    assert [(v.value, v.count) for v in t.top_values] == [("q", len(values))] and t.distinct == 1
    assert st["s"].missing == 2


def test_non_finite_floats_are_counted_apart(engine, tmp_path):
    x = [1.0, 2.0, float("nan"), float("inf"), float("-inf"), None, 0.0, 3.0]
    st = compute(engine, dataset(engine, tmp_path, pa.table({"x": x})))
    n = st["x"].numeric
    assert st["x"].count == 7 and st["x"].missing == 1
    assert n.non_finite == 3
    assert n.mean == pytest.approx(1.5) and n.min == 0.0 and n.max == 3.0 and n.zeros == 1
    assert sum(n.histogram.counts) == st["x"].count - n.non_finite


def test_constant_column_has_one_bucket(engine, tmp_path):
    st = compute(engine, dataset(engine, tmp_path, pa.table({"x": [4, 4, 4, None]})))
    h = st["x"].numeric.histogram
    assert h.boundaries == [4.0, 4.0] and h.counts == [3]
    assert st["x"].numeric.std == 0.0


def test_empty_dataset(engine, tmp_path):
    table = pa.table({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    st = compute(engine, dataset(engine, tmp_path, table))
    assert st.num_rows == 0
    assert st["x"].count == 0 and st["x"].numeric.mean is None and st["x"].numeric.histogram is None
    assert st["s"].string.distinct == 0 and st["s"].string.top_values == []


def test_odd_column_names(engine, tmp_path):
    table = pa.table({'we"ird name': [1, 2, 3], "select": ["a", "b", "a"], "0.count": [1.0, 2.0, 2.0]})
    st = compute(engine, dataset(engine, tmp_path, table))
    assert st['we"ird name'].numeric.max == 3
    assert st["select"].string.top_values[0].value == "a"
    assert st["0.count"].numeric.mean == pytest.approx(5 / 3)


def test_json_round_trip_is_strict_json(mixed_stats, tmp_path):
    path = mixed_stats.save(tmp_path / "stats")
    assert path.endswith("statistics.json")
    with open(path) as f:
        raw = json.load(f)
    assert raw["format"] == "sluice.statistics/1" and raw["features"]["s"]["string"]["distinct"] == 5
    loaded = DatasetStatistics.load(tmp_path / "stats")
    assert loaded == mixed_stats
    assert DatasetStatistics.from_dict(mixed_stats.to_dict()) == mixed_stats


def test_splits(engine, tmp_path):
    train = dataset(engine, tmp_path, pa.table({"x": [1, 2, 3]}), "train.parquet")
    eval_ = dataset(engine, tmp_path, pa.table({"x": [10, 20]}), "eval.parquet")
    stats = compute_splits(engine, {"train": train, "eval": eval_}, histogram_buckets=4)
    assert {k: v.num_rows for k, v in stats.items()} == {"train": 3, "eval": 2}
    assert stats["eval"].split == "eval" and len(stats["train"]["x"].numeric.histogram.counts) == 4
    save_splits(stats, tmp_path / "out")
    assert (tmp_path / "out" / "train" / "statistics.json").exists()
    assert load_splits(tmp_path / "out") == stats


def test_html_repr(mixed_stats):
    html = mixed_stats._repr_html_()
    assert html.startswith("<table") and "<td" in html and "banana" in html and "5000 rows" in html


def test_invalid_options(engine, tmp_path):
    ds = dataset(engine, tmp_path, pa.table({"x": [1]}))
    with pytest.raises(ValueError):
        compute(engine, ds, histogram_buckets=0)


def test_quantile_points_are_valid_sql_for_odd_counts(engine, tmp_path):
    x = np.arange(1000, dtype=np.float64)
    st = compute(engine, dataset(engine, tmp_path, pa.table({"x": x})), quantiles=3, histogram_buckets=3)
    qs = st["x"].numeric.quantiles
    assert len(qs) == 4 and math.isclose(qs[1][0], 1 / 3)
    assert abs(qs[1][1] - 333) <= 15 and st["x"].numeric.histogram.counts == [333, 333, 334]
    assert pd.Series(x).mean() == st["x"].numeric.mean
