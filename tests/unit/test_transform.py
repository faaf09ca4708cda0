"""sluice.transform mappers: values per op, null handling, stable hashing, and tracing errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice.transform as st
from sluice.engine import get_engine
from sluice.transform.hashing import fnv1a_64, stable_hash


@pytest.fixture(scope="module")
def engine():
    eng = get_engine("local")
    yield eng
    eng.close()


def fit_table(engine, tmp_path, table: pa.Table, fn) -> st.TransformGraph:
    path = str(tmp_path / "data.parquet")
    pq.write_table(table, path)
    return st.fit(engine, engine.read_parquet([path]), fn)


def col(batch: pa.RecordBatch, name: str) -> list:
    return batch.column(name).to_pylist()


# ---------------------------------------------------------------- numeric mappers

def test_clip_log1p_and_types(engine, tmp_path):
    t = pa.table({"v": [-5.0, -1.0, 0.0, math.e - 1, 100.0, None]})
    g = fit_table(engine, tmp_path, t, lambda x: {
        "clip": st.clip(x["v"], 0, 10), "lo": st.clip(x["v"], lo=-2), "log": st.log1p(x["v"])})
    out = g.apply(t)
    assert out.schema.field("clip").type == pa.float32()
    # A missing value stays missing through the mapper and becomes 0.0 at the output.
    assert col(out, "clip") == [0.0, 0.0, 0.0, pytest.approx(math.e - 1), 10.0, 0.0]
    assert col(out, "lo") == [-2.0, -1.0, 0.0, pytest.approx(math.e - 1), 100.0, 0.0]
    # log1p has no value at x <= -1: missing, hence 0.0.
    assert col(out, "log") == [0.0, 0.0, 0.0, pytest.approx(1.0), pytest.approx(math.log(101)), 0.0]


def test_zscore_and_scale_use_population_statistics(engine, tmp_path):
    v = [1.0, 2.0, 3.0, 4.0, None]
    t = pa.table({"v": v, "c": [7, 7, 7, 7, 7]})
    g = fit_table(engine, tmp_path, t, lambda x: {
        "z": st.zscore(x["v"]), "s": st.scale_to_0_1(x["v"]),
        "zc": st.zscore(x["c"]), "sc": st.scale_to_0_1(x["c"])})
    std = float(np.std([1, 2, 3, 4]))  # ddof=0
    assert g.analyzer_results["std(v)"] == pytest.approx(std, rel=1e-12)
    out = g.apply(t)
    assert col(out, "z") == pytest.approx([(a - 2.5) / std for a in (1, 2, 3, 4)] + [0.0], rel=1e-6)
    assert col(out, "s") == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 0.0], rel=1e-6)
    # Constant column: std 0 divides by 1, range 0 maps to 0.5.
    assert col(out, "zc") == [0.0] * 5
    assert col(out, "sc") == [0.5] * 5
    # Unseen values outside the fitted range are not clipped.
    assert col(g.apply({"v": [7.0], "c": [8]}), "s") == [2.0]


def test_fill_missing_mean_constant_and_string(engine, tmp_path):
    t = pa.table({"v": [1.0, float("nan"), 5.0, None], "i": pa.array([1, None, 3, None], pa.int32()),
                  "s": ["a", None, "b", "a"]})
    g = fit_table(engine, tmp_path, t, lambda x: {
        "mean": st.fill_missing(x["v"]), "const": st.fill_missing(x["v"], value=-1.0),
        "int_vocab": st.vocabulary(st.fill_missing(x["i"], value=0)),
        "s": st.vocabulary(st.fill_missing(x["s"], value="none"), num_oov_buckets=0)})
    assert g.analyzer_results["mean(v)"] == 3.0  # NaN reads as missing, like null
    out = g.apply(t)
    assert col(out, "mean") == [1.0, 3.0, 5.0, 3.0]
    assert col(out, "const") == [1.0, -1.0, 5.0, -1.0]
    # An int column filled with an int stays int: the vocabulary holds 0, 1, 3 (not 0.0 ...).
    assert g.vocabulary("int_vocab") == [0, 1, 3]
    assert col(out, "int_vocab") == [1, 0, 2, 0]
    assert g.vocabulary("s") == ["a", "b", "none"]
    assert col(out, "s") == [0, 2, 1, 0]
    with pytest.raises(st.TransformError, match="needs value="):
        fit_table(engine, tmp_path, t, lambda x: {"s": st.vocabulary(st.fill_missing(x["s"]))})


# ---------------------------------------------------------------- categorical mappers

def test_bucketize_fixed_and_quantile(engine, tmp_path):
    t = pa.table({"age": [10.0, 18.0, 29.9, 30.0, 64.0, 65.0, 99.0, None]})
    g = fit_table(engine, tmp_path, t, lambda x: {
        "b": st.bucketize(x["age"], boundaries=[18, 30, 65]), "q": st.bucketize(x["age"], num_buckets=2)})
    out = g.apply(t)
    # boundaries[i-1] <= x < boundaries[i]; missing -> bucket 0.
    assert col(out, "b") == [0, 1, 1, 2, 2, 3, 3, 0]
    assert out.schema.field("b").type == pa.int64()
    (median,) = g.analyzer_results["quantiles(age, num_buckets=2)"]
    assert 29.9 <= median <= 64.0
    assert col(out, "q") == [0, 0, 0, int(30.0 >= median), 1, 1, 1, 0]
    assert {s.name: s.cardinality for s in g.feature_specs} == {"b": 4, "q": 2}
    with pytest.raises(st.TransformError, match="strictly increasing"):
        st.bucketize(st.Inputs({"a": "float64"})["a"], boundaries=[3, 1])
    with pytest.raises(st.TransformError, match="exactly one"):
        st.bucketize(st.Inputs({"a": "float64"})["a"])


def test_vocabulary_order_top_k_threshold_and_oov(engine, tmp_path):
    values = ["b"] * 5 + ["a"] * 3 + ["c"] * 3 + ["d"] * 1 + [None] * 4
    t = pa.table({"s": values})
    g = fit_table(engine, tmp_path, t, lambda x: {
        "all": st.vocabulary(x["s"]), "top2": st.vocabulary(x["s"], top_k=2),
        "freq": st.vocabulary(x["s"], frequency_threshold=3, num_oov_buckets=4),
        "label": st.vocabulary(x["s"], num_oov_buckets=0)})
    # Most frequent first, ties by value; nulls are never vocabulary values.
    assert g.analyzer_results["vocabulary(s)"] == {
        "values": ["b", "a", "c", "d"], "counts": [5, 3, 3, 1], "num_distinct": 4}
    assert g.vocabulary("top2") == ["b", "a"]
    assert g.vocabulary("freq") == ["b", "a", "c"]
    assert {s.name: s.cardinality for s in g.feature_specs} == {"all": 5, "top2": 3, "freq": 7, "label": 4}
    out = g.apply({"s": ["a", "c", "zzz", None]}, outputs=["all", "top2", "freq"])
    assert col(out, "all") == [1, 2, 4, 4]
    assert col(out, "top2") == [1, 2, 2, 2]
    freq = col(out, "freq")
    assert freq[:2] == [1, 2] and all(3 <= i < 7 for i in freq[2:])
    # Several OOV buckets: unseen values hash, so equal values share a bucket and others spread.
    many = col(g.apply({"s": [f"new{i}" for i in range(200)] * 2}, outputs=["freq"]), "freq")
    assert many[:200] == many[200:] and set(many) == {3, 4, 5, 6}
    # No OOV bucket (labels): an unseen value is an error naming it.
    with pytest.raises(st.TransformError, match="zzz"):
        g.apply({"s": ["a", "zzz"]}, outputs=["label"])


def test_vocabulary_ties_order_by_value(engine, tmp_path):
    words = [f"w{i:02d}" for i in range(40)]
    shuffled = list(np.random.default_rng(7).permutation(words * 2)) + ["top"] * 3
    g = fit_table(engine, tmp_path, pa.table({"s": shuffled}), lambda x: {"s": st.vocabulary(x["s"], top_k=11)})
    assert g.vocabulary("s") == ["top"] + words[:10]


def test_vocabulary_of_integers_and_serving_types(engine, tmp_path):
    t = pa.table({"k": pa.array([3, 1, 3, 2, 3, 1], pa.int16())})
    g = fit_table(engine, tmp_path, t, lambda x: {"k": st.vocabulary(x["k"])})
    assert g.vocabulary("k") == [3, 1, 2]
    assert g.input_columns == {"k": "int16"}
    # Serving sends JSON numbers (int64, or floats holding integers): coerced to the fit type.
    assert col(g.apply({"k": [1, 2, 3, 9]}), "k") == [1, 2, 0, 3]
    assert col(g.apply({"k": pa.array([2.0])}), "k") == [2]
    with pytest.raises(st.TransformError, match="cannot read"):
        g.apply({"k": ["x"]})


def test_hash_bucket_and_feature_cross(engine, tmp_path):
    t = pa.table({"s": ["DE", "FR", "US", "", None, "héllo"], "i": [7, 42, -1, 7, 7, None]})
    g = fit_table(engine, tmp_path, t, lambda x: {
        "hs": st.hash_bucket(x["s"], 1000), "hi": st.hash_bucket(x["i"], 1000),
        "x": st.feature_cross([x["s"], x["i"]], hash_buckets=10000),
        "xb": st.feature_cross([x["s"], st.bucketize(x["i"], boundaries=[10])], hash_buckets=50)})
    out = g.apply(t)
    # Pinned values: FNV-1a 64 + murmur3 fmix64, the same in every process and version.
    assert col(out, "hs") == [13, 400, 965, 342, 342, 781]  # null hashes like ""
    assert col(out, "hi") == [759, 476, 59, 759, 759, 342]
    assert col(out, "x")[0] != col(out, "x")[3]  # same i, different s
    assert all(0 <= v < 50 for v in col(out, "xb"))
    # Row-wise: a cross depends on its row only.
    assert col(g.apply(t.slice(3, 1)), "x") == col(out, "x")[3:4]
    with pytest.raises(st.TransformError, match="at least 2"):
        st.feature_cross([st.Inputs({"a": "string"})["a"]], hash_buckets=10)


# ---------------------------------------------------------------- stable hashing

def _fnv_reference(text: str) -> int:
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


def test_fnv_small_and_vectorized_paths_agree():
    """A serving request (a few rows) hashes byte by byte in Python, a batch with numpy passes."""
    from sluice.transform.hashing import SMALL_BATCH

    rng = np.random.default_rng(5)
    alphabet = list("abcxyz019 éö日")
    words = ["".join(rng.choice(alphabet, rng.integers(0, 40))) for _ in range(200)] + [None]
    big = pa.array(words)
    expected = [_fnv_reference(w or "") for w in words]
    assert len(big) > SMALL_BATCH and fnv1a_64(big).tolist() == expected
    for start in (0, 7, 190):
        small = big.slice(start, SMALL_BATCH)
        assert fnv1a_64(small).tolist() == expected[start:start + SMALL_BATCH]


def test_fnv_matches_reference_and_known_vectors():
    assert int(fnv1a_64(pa.array([""]))[0]) == 0xCBF29CE484222325
    assert int(fnv1a_64(pa.array(["a"]))[0]) == 0xAF63DC4C8601EC8C
    words = ["", "a", "foobar", "héllo wörld", "x" * 300, "日本", "ab", "ba"]
    arr = pa.array(words + [None]).slice(1)  # a sliced array exercises buffer offsets
    assert fnv1a_64(arr).tolist() == [_fnv_reference(w) for w in words[1:]] + [_fnv_reference("")]
    # Dictionary-encoded hashing equals direct hashing, and ints hash as their decimal text.
    repeated = pa.array(["b", "a", "b", None, "a"])
    assert stable_hash(repeated).tolist() == [_fnv_reference(w or "") for w in repeated.to_pylist()]
    assert stable_hash(pa.array([12, -3])).tolist() == [_fnv_reference("12"), _fnv_reference("-3")]
    # Both routes, row by row (mostly distinct ids) and per distinct value, agree with the reference.
    ids = pa.array([f"user{i}" for i in range(3000)] + [None, "é"]).slice(5)
    repetitive = pa.array(["x", "yy", None, ""] * 1000)
    for arr in (ids, repetitive, pa.array(np.arange(2000) % 7)):
        assert stable_hash(arr).tolist() == [_fnv_reference("" if v is None else str(v)) for v in arr.to_pylist()]


def test_hash_is_identical_in_another_process():
    code = ("import pyarrow as pa, sluice.transform as st;"
            "x = st.Inputs({'s': 'string'});"
            "g = st.TransformGraph({'h': st.hash_bucket(x['s'], 1000)}, {'s': 'string'}, {});"
            "print(g.apply({'s': ['DE', 'FR', 'US']}).column('h').to_pylist())")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[13, 400, 965]"


# ---------------------------------------------------------------- tracing errors

def test_unknown_column_names_it_and_lists_available(engine, tmp_path):
    t = pa.table({"age": [1.0], "fare": [2.0]})
    with pytest.raises(st.UnknownColumnError) as err:
        fit_table(engine, tmp_path, t, lambda x: {"a": st.zscore(x["agee"])})
    assert str(err.value) == "unknown column 'agee'; available columns: age, fare"
    assert isinstance(err.value, KeyError)


def test_invalid_expressions_fail_while_tracing():
    x = st.Inputs({"s": "string", "v": "float64"})
    with pytest.raises(st.TransformError, match="zscore needs a number or categorical input.*string"):
        st.zscore(x["s"])
    with pytest.raises(st.TransformError, match="top_k"):
        st.vocabulary(x["s"], top_k=0)
    with pytest.raises(st.TransformError, match="lo .* greater"):
        st.clip(x["v"], 5, 1)
    with pytest.raises(st.TransformError, match="expected a feature"):
        st.log1p(3.0)
    # A string output must say what it becomes: ids or a passthrough column.
    with pytest.raises(st.TransformError, match="st.passthrough"):
        st.TransformGraph({"s": x["s"]}, {"s": "string"}, {})
    # Hash ids have no SQL form, so they cannot feed an analyzer.
    with pytest.raises(st.TransformError, match="cannot feed an analyzer"):
        from sluice.transform.analyzers import to_sql
        to_sql(st.hash_bucket(x["s"], 10), {})


def test_small_batches_give_the_same_ids_as_large_ones(engine, tmp_path):
    """Serving requests take cheaper paths (a dict instead of index_in, no dictionary encoding
    before hashing); every row must get exactly the values it gets inside a large batch."""
    rng = np.random.default_rng(11)
    n = 3000
    words = [f"w{int(i)}" for i in rng.zipf(1.3, n) % 5000]
    table = pa.table({"s": [None if i % 97 == 0 else w for i, w in enumerate(words)],
                      "k": pa.array(rng.integers(0, 400, n), pa.int64()),
                      "x": [None if i % 50 == 0 else float(v) for i, v in enumerate(rng.normal(3, 2, n))]})
    graph = fit_table(engine, tmp_path, table, lambda x: {
        "s1": st.vocabulary(x["s"], top_k=300, num_oov_buckets=1),
        "s3": st.vocabulary(x["s"], top_k=300, num_oov_buckets=3),
        "k": st.vocabulary(x["k"], num_oov_buckets=1),
        "h": st.hash_bucket(x["s"], num_buckets=1000),
        "cross": st.feature_cross([x["s"], x["k"]], hash_buckets=5000),
        "z": st.zscore(st.log1p(st.clip(st.fill_missing(x["x"], 0), 0, None))),
        "q": st.bucketize(x["x"], num_buckets=8)})
    unseen = pa.table({"s": ["never-seen", None, words[0]], "k": pa.array([10_000, 3, 5], pa.int64()),
                       "x": [1.0, None, -4.0]})
    data = pa.concat_tables([table, unseen])
    whole = graph.apply(data)
    for start, size in [(0, 1), (96, 2), (500, 17), (1000, 64), (n, 3), (n - 5, 8)]:
        part = graph.apply(data.slice(start, size))
        assert part.to_pydict() == whole.slice(start, size).to_pydict(), (start, size)
    assert whole.column("s1")[n].as_py() == graph.feature_specs[0].cardinality - 1  # the OOV bucket


def test_refitting_the_same_data_gives_the_same_graph(tmp_path):
    """Quantile boundaries used to change from fit to fit: DuckDB merged its threads' t-digests
    in whatever order they finished (a bucketized CTR column even lost or gained a bucket)."""
    rng = np.random.default_rng(0)
    n = 400_000
    counts = np.floor(rng.lognormal(1.5, 1.0, n))  # discrete and heavy-tailed: many ties, like log counts
    pq.write_table(pa.table({"x": counts, "y": rng.normal(size=n)}), tmp_path / "d.parquet", row_group_size=20_000)

    def fn(x):
        return {"xq": st.bucketize(st.log1p(x["x"]), num_buckets=16), "yq": st.bucketize(x["y"], num_buckets=64),
                "yz": st.zscore(x["y"])}

    fitted = []
    for _ in range(4):
        eng = get_engine("local")
        fitted.append(st.fit(eng, eng.read_parquet([str(tmp_path / "d.parquet")]), fn).analyzer_results)
        eng.close()
    assert all(f == fitted[0] for f in fitted[1:])
    assert len(fitted[0]["quantiles(y, num_buckets=64)"]) == 63
