"""Tests of the example data generators: examples/ctr/data.py and examples/penguins/data.py."""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from examples.ctr import data as ctr

ROWS = 150_000  # 100k to train the baseline, 50k to score it


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pa.Table.from_batches(list(ctr.generate(ROWS, seed=0)))


@pytest.fixture(scope="module")
def true_p() -> np.ndarray:
    """p as drawn during generation (not recomputed from the columns)."""
    return np.concatenate([raw["p"] for raw in ctr._blocks(ROWS, 0, stream=0)])


def test_same_seed_same_data_whatever_the_chunking() -> None:
    batches = list(ctr.generate(20_001, seed=3, chunk_rows=7_000))
    assert [x.num_rows for x in batches] == [7_000, 7_000, 6_001]
    a = pa.Table.from_batches(batches)
    assert a.equals(pa.Table.from_batches(list(ctr.generate(20_001, seed=3))))
    c = pa.Table.from_batches(list(ctr.generate(20_001, seed=4)))
    assert not a.equals(c)
    assert not np.array_equal(a["C5"].to_numpy(), c["C5"].to_numpy())


def test_schema_and_value_ranges(table: pa.Table) -> None:
    assert table.schema == ctr.SCHEMA
    expected = ["user_id", "timestamp", "label", *[f"I{i}" for i in range(1, 14)],
                *[f"C{i}" for i in range(1, 27)]]
    assert table.column_names == expected
    assert set(np.unique(table["label"].to_numpy())) == {0, 1}
    ts = table["timestamp"].to_numpy()
    assert ts[0] == ctr.T0 and ts[-1] < ctr.T0 + ctr.SPAN_S and np.all(np.diff(ts) >= 0)
    users = table["user_id"].to_numpy()
    assert users.min() >= 1 and users.max() <= ctr.N_USERS
    for col in ctr.NUMERIC_COLUMNS:
        x = table[col].to_numpy(zero_copy_only=False)
        x = x[~np.isnan(x)]
        assert x.min() >= 0 and np.array_equal(x, np.floor(x))  # counts
        # heavy right tail: the extreme quantile is far beyond the typical value
        assert np.quantile(x, 0.999) > 10 * max(np.median(x), 1.0), col


def test_missing_rates(table: pa.Table) -> None:
    rates = [table[c].null_count / table.num_rows for c in ctr.NUMERIC_COLUMNS]
    for rate, (_, _, _, want) in zip(rates, ctr.NUMERIC_SPEC):
        assert abs(rate - want) < 0.005
    assert min(rates) == 0.0 and 0.15 < max(rates) < 0.21 and len(set(ctr.NUMERIC_SPEC)) == 13
    assert all(table[c].null_count == 0 for c in ctr.CATEGORICAL_COLUMNS)


def test_vocabularies(table: pa.Table) -> None:
    assert len(ctr.VOCAB_SIZES) == 26
    assert min(ctr.VOCAB_SIZES) == 10 and max(ctr.VOCAB_SIZES) == 100_000
    # spread over every decade between 10 and 100k
    assert {int(np.log10(v)) for v in ctr.VOCAB_SIZES} == {1, 2, 3, 4, 5}
    for f, col in enumerate(ctr.CATEGORICAL_COLUMNS):
        values = pa.chunked_array(table[col]).unique()
        size = ctr.VOCAB_SIZES[f]
        assert len(values) <= size
        if size <= 1_000:
            assert len(values) == size, col  # small vocabularies are fully seen
        assert all(re.fullmatch(rf"c{f + 1}_\d{{6}}", v) for v in values.to_pylist()[:50])
    # Zipf: the most frequent value of the 100k vocabulary is common, most values are rare
    counts = pa.chunked_array(table["C5"]).value_counts().field("counts").to_numpy()
    assert counts.max() > 0.05 * table.num_rows and np.median(counts) <= 2


def test_base_rate_and_labels_follow_p(table: pa.Table, true_p: np.ndarray) -> None:
    y = table["label"].to_numpy()
    assert 0.17 < y.mean() < 0.23 and 0.18 < true_p.mean() < 0.22
    # labels ~ Bernoulli(p): overall and by decile of p, within 4 standard errors
    se = np.sqrt(np.sum(true_p * (1 - true_p))) / len(y)
    assert abs(y.mean() - true_p.mean()) < 4 * se
    order = np.argsort(true_p)
    for part in np.array_split(order, 10):
        pp = true_p[part]
        se = np.sqrt(np.sum(pp * (1 - pp))) / len(part)
        assert abs(y[part].mean() - pp.mean()) < 4 * se + 1e-3


def test_click_probability_recomputed_from_written_files(tmp_path) -> None:
    rows = 30_000
    true_p = np.concatenate([raw["p"] for raw in ctr._blocks(rows, 0, stream=0)])
    paths = ctr.write(str(tmp_path / "pq"), rows, seed=0, rows_per_file=12_000)
    assert [os.path.basename(p) for p in paths] == [f"part-0000{i}.parquet" for i in range(3)]
    assert [pq.read_metadata(p).num_rows for p in paths] == [12_000, 12_000, 6_000]
    # no temporary files are left behind
    assert sorted(os.listdir(tmp_path / "pq")) == sorted(os.path.basename(p) for p in paths)
    # dictionary-encoded categoricals work too
    got = pq.read_table(str(tmp_path / "pq"), read_dictionary=["C1", "C10"])
    np.testing.assert_allclose(ctr.click_probability(got, seed=0), true_p, rtol=0, atol=1e-12)

    csvs = ctr.write(str(tmp_path / "csv"), rows, seed=0, fmt="csv", rows_per_file=rows)
    back = pacsv.read_csv(csvs[0])  # numerics come back as int64 here
    np.testing.assert_allclose(ctr.click_probability(back, seed=0), true_p, rtol=0, atol=1e-12)
    assert np.array_equal(back["label"].to_numpy(), got["label"].to_numpy())

    # a rerun with fewer rows leaves one consistent data set behind
    ctr.write(str(tmp_path / "pq"), 5_000, seed=0, rows_per_file=12_000)
    assert sorted(os.listdir(tmp_path / "pq")) == ["part-00000.parquet"]


def test_missing_numeric_counts_as_zero(table: pa.Table) -> None:
    t = table.slice(0, 5_000)
    i = t.schema.get_field_index("I3")
    as_null = t.set_column(i, "I3", pa.nulls(t.num_rows, pa.float64()))
    as_zero = t.set_column(i, "I3", pa.array(np.zeros(t.num_rows)))
    np.testing.assert_array_equal(ctr.click_probability(as_null), ctr.click_probability(as_zero))
    assert not np.allclose(ctr.click_probability(as_zero), ctr.click_probability(t))


def test_expected_auc_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 60)
    s = np.round(rng.normal(size=60) + 3 * p, 1)  # with ties
    num = den = 0.0
    for i in range(60):
        for j in range(60):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * ((s[i] > s[j]) + 0.5 * (s[i] == s[j]))
    assert ctr.expected_auc(p, s) == pytest.approx(num / den, abs=1e-12)


def test_bayes_auc(table: pa.Table, true_p: np.ndarray) -> None:
    from sklearn.metrics import roc_auc_score

    bayes = ctr.bayes_optimal_auc(50_000, seed=0)
    assert 0.75 < bayes < 0.9
    # the realised AUC of p on drawn labels agrees with the expectation
    assert roc_auc_score(table["label"].to_numpy(), true_p) == pytest.approx(bayes, abs=0.01)
    assert ctr.expected_auc(true_p) == pytest.approx(bayes, abs=0.01)


def test_logistic_regression_falls_short_of_bayes(table: pa.Table, true_p: np.ndarray) -> None:
    """The interactions and non-linearities leave a plain linear model well behind."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n_train, top = 100_000, 100
    x = np.column_stack([  # log1p of the numerics, missing -> 0
        np.log1p(np.nan_to_num(table[c].to_numpy(zero_copy_only=False)))
        for c in ctr.NUMERIC_COLUMNS
    ])
    x = (x - x[:n_train].mean(0)) / x[:n_train].std(0)
    blocks = [sp.csr_matrix(x)]
    for col in ctr.CATEGORICAL_COLUMNS:  # one-hot of the 100 most frequent values + "other"
        codes = pa.chunked_array(table[col]).combine_chunks().dictionary_encode().indices.to_numpy()
        counts = np.bincount(codes[:n_train], minlength=codes.max() + 1)
        slot = np.full(len(counts), top)
        slot[np.argsort(-counts, kind="stable")[:top]] = np.arange(min(top, len(counts)))
        blocks.append(sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), slot[codes])),
                                    shape=(len(codes), top + 1)))
    m = sp.hstack(blocks).tocsr()
    y = table["label"].to_numpy()
    lr = LogisticRegression(max_iter=300).fit(m[:n_train], y[:n_train])
    score = lr.decision_function(m[n_train:])
    lr_auc = ctr.expected_auc(true_p[n_train:], score)
    bayes = ctr.expected_auc(true_p[n_train:])
    assert 0.65 < lr_auc < bayes - 0.015


def test_cli(tmp_path, capsys) -> None:
    ctr.main(["--rows", "2000", "--out", str(tmp_path), "--format", "csv"])
    out = capsys.readouterr().out
    assert os.path.exists(tmp_path / "part-00000.csv")
    assert 0.75 < float(re.search(r"bayes_optimal_auc=([0-9.]+)", out).group(1)) < 0.9


def test_penguins_csv(tmp_path) -> None:
    pytest.importorskip("palmerpenguins")
    from examples.penguins import data as penguins

    path = penguins.write(str(tmp_path))
    assert path == str(tmp_path / "penguins.csv") and os.listdir(tmp_path) == ["penguins.csv"]
    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    assert t.num_rows == 344
    assert t.column_names == ["species", "island", "bill_length_mm", "bill_depth_mm",
                              "flipper_length_mm", "body_mass_g", "sex", "year"]
    assert t["sex"].null_count == 11 and t["body_mass_g"].null_count == 2
    assert t.schema.field("body_mass_g").type == pa.int64()
    species = pa.chunked_array(t["species"]).unique().to_pylist()
    assert sorted(species) == ["Adelie", "Chinstrap", "Gentoo"]
