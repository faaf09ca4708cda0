"""sluice.evaluate.compute_metrics: values equal sklearn's, overall and per slice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

from sluice.engine import get_engine
from sluice.errors import DataError
from sluice.evaluate import EvalResult, compute_metrics

EPS = 1e-7


@pytest.fixture(scope="module")
def engine():
    return get_engine("local")


def dataset(engine, tmp_path, df: pd.DataFrame | pa.Table, name: str = "preds.parquet"):
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, tmp_path / name)
    return engine.read_parquet([str(tmp_path / name)])


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 20000
    y = rng.integers(0, 2, n)
    # Rounded scores give many ties; some are exactly 0 or 1 to exercise the clipping.
    p = np.clip(np.round(rng.random(n) * 0.7 + y * 0.25, 2), 0.0, 1.0)
    country = rng.choice(["FR", "DE", "US", "IT"], n, p=[0.4, 0.3, 0.2, 0.1])
    device = rng.integers(0, 3, n)
    return pd.DataFrame({"label": y, "prediction": p, "country": country, "device": device})


def sk_binary(df):
    y, p = df["label"].to_numpy(), df["prediction"].to_numpy()
    return {"auc": roc_auc_score(y, p), "log_loss": log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]),
            "accuracy": accuracy_score(y, p >= 0.5), "count": len(df), "positive_rate": y.mean(),
            "calibration": p.mean() / y.mean(), "mean_prediction": p.mean()}


def assert_metrics(got, expected):
    assert set(got) == set(expected)
    assert got["count"] == expected["count"]
    assert abs(got["auc"] - expected["auc"]) < 1e-9  # exact AUC
    for name in ("log_loss", "accuracy", "positive_rate", "calibration", "mean_prediction"):
        assert got[name] == pytest.approx(expected[name], rel=1e-9), name


def test_binary_matches_sklearn_with_ties(engine, tmp_path, binary):
    result = compute_metrics(engine, dataset(engine, tmp_path, binary), "binary")
    assert result.task == "binary" and result.slices == []
    assert_metrics(result.metrics, sk_binary(binary))


def test_binary_per_slice(engine, tmp_path, binary):
    result = compute_metrics(engine, dataset(engine, tmp_path, binary), "binary", slices=["country", "device"])
    assert [(s.feature, s.value) for s in result.slices] == [
        ("country", "FR"), ("country", "DE"), ("country", "US"), ("country", "IT"),
        *sorted((("device", int(d)) for d in range(3)), key=lambda fv: (-(binary.device == fv[1]).sum(), fv[1]))]
    for feature in ("country", "device"):
        for value, group in binary.groupby(feature):
            assert_metrics(result.slice(feature, value if feature == "country" else int(value)), sk_binary(group))
    assert result.slices_left_out == {}


def test_slices_are_capped_and_counted(engine, tmp_path, binary):
    result = compute_metrics(engine, dataset(engine, tmp_path, binary), "binary", slices=["country"], max_slices=2)
    assert [s.value for s in result.slices] == ["FR", "DE"]  # the two largest
    assert result.slices_left_out == {"country": 2}
    with pytest.raises(KeyError, match="known values"):
        result.slice("country", "IT")


def test_null_slice_value_is_its_own_slice(engine, tmp_path):
    df = pd.DataFrame({"label": [1, 0, 1, 0, 1], "prediction": [0.9, 0.2, 0.4, 0.6, 0.8],
                       "c": ["a", "a", None, None, None]})
    result = compute_metrics(engine, dataset(engine, tmp_path, df), "binary", slices=["c"])
    assert [(s.value, s.metrics["count"]) for s in result.slices] == [(None, 3), ("a", 2)]
    assert result.slice("c", None)["accuracy"] == pytest.approx(1 / 3)  # 0.4 -> 0 (label 1), 0.6 -> 1 (label 0)
    assert result.slice("c", "a")["auc"] == 1.0


def test_auc_undefined_with_one_class(engine, tmp_path):
    df = pd.DataFrame({"label": [True, True], "prediction": [0.3, 0.8]})
    m = compute_metrics(engine, dataset(engine, tmp_path, df), "binary").metrics
    assert m["auc"] is None and m["accuracy"] == 0.5 and m["positive_rate"] == 1.0


def test_calibration_table(engine, tmp_path, binary):
    result = compute_metrics(engine, dataset(engine, tmp_path, binary), "binary")
    assert len(result.calibration) == 10
    assert sum(b.count for b in result.calibration) == len(binary)
    bucket = np.minimum(np.floor(binary.prediction * 10).astype(int), 9)
    for b in result.calibration:
        k = int(round(b.lower * 10))
        rows = binary[bucket == k]
        assert b.count == len(rows)
        if len(rows):
            assert b.mean_prediction == pytest.approx(rows.prediction.mean())
            assert b.mean_label == pytest.approx(rows.label.mean())
        else:
            assert b.mean_prediction is None


def test_multiclass_accuracy_and_log_loss(engine, tmp_path):
    rng = np.random.default_rng(5)
    n, k = 3000, 4
    logits = rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    df = pd.DataFrame({"label": y, "prediction": probs.argmax(axis=1), "g": rng.choice(["x", "y"], n)})
    for j in range(k):
        df[f"prob_{j}"] = probs[:, j]
    result = compute_metrics(engine, dataset(engine, tmp_path, df), "multiclass", slices=["g"])
    assert result.metrics["count"] == n
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(y, df.prediction), rel=1e-12)
    assert result.metrics["log_loss"] == pytest.approx(log_loss(y, probs, labels=list(range(k))), rel=1e-9)
    for value, group in df.groupby("g"):
        assert result.slice("g", value)["accuracy"] == pytest.approx(accuracy_score(group.label, group.prediction))
    plain = compute_metrics(engine, dataset(engine, tmp_path, df[["label", "prediction"]], "plain.parquet"),
                            "multiclass")
    assert set(plain.metrics) == {"count", "accuracy"}


def test_multiclass_with_string_classes(engine, tmp_path):
    df = pd.DataFrame({"label": ["cat", "dog", "dog", "bird"], "prediction": ["cat", "dog", "cat", "bird"]})
    assert compute_metrics(engine, dataset(engine, tmp_path, df), "multiclass").metrics["accuracy"] == 0.75


def test_regression_matches_sklearn(engine, tmp_path):
    rng = np.random.default_rng(9)
    n = 5000
    y = rng.normal(10, 3, n)
    p = y + rng.normal(0, 1, n)
    df = pd.DataFrame({"target": y, "yhat": p, "s": rng.choice(["a", "b", "c"], n)})
    result = compute_metrics(engine, dataset(engine, tmp_path, df), "regression", label="target",
                             prediction="yhat", slices=["s"])
    m = result.metrics
    assert m["count"] == n
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)), rel=1e-9)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9)
    assert m["mean_label"] == pytest.approx(y.mean()) and m["mean_prediction"] == pytest.approx(p.mean())
    for value, g in df.groupby("s"):
        assert result.slice("s", value)["rmse"] == pytest.approx(np.sqrt(mean_squared_error(g.target, g.yhat)))
        assert result.slice("s", value)["mae"] == pytest.approx(mean_absolute_error(g.target, g.yhat))
    assert result.label == "target" and result.prediction == "yhat"


@pytest.mark.parametrize("task, df, message", [
    ("binary", pd.DataFrame({"label": [1.0, None], "prediction": [0.5, 0.5]}), "1 rows have a NULL 'label'"),
    ("binary", pd.DataFrame({"label": [1, 2], "prediction": [0.5, 0.5]}), "not 0/1"),
    ("binary", pd.DataFrame({"label": [1, 0], "prediction": [0.5, 1.5]}), "probabilities in [0, 1]"),
    ("binary", pa.table({"label": [1, 0], "prediction": [0.5, np.nan]}), "probabilities in [0, 1]"),  # NaN, not NULL
    ("regression", pd.DataFrame({"label": [1.0, 2.0], "prediction": [np.inf, 1.0]}), "finite numbers"),
    ("multiclass", pd.DataFrame({"label": [0, 3], "prediction": [0, 1], "prob_0": [0.5, 0.5], "prob_1": [0.5, 0.5]}),
     "class ids 0 .. 1"),
    ("binary", pd.DataFrame({"label": pd.Series([], dtype=int), "prediction": pd.Series([], dtype=float)}), "empty"),
    ("binary", pd.DataFrame({"y": [1], "prediction": [0.5]}), "lack column(s) label"),
])
def test_bad_inputs_fail_loudly(engine, tmp_path, task, df, message):
    with pytest.raises(DataError) as err:
        compute_metrics(engine, dataset(engine, tmp_path, df), task)
    assert message in str(err.value)


def test_unknown_task(engine, tmp_path, binary):
    with pytest.raises(ValueError, match="unknown task"):
        compute_metrics(engine, dataset(engine, tmp_path, binary.head()), "ranking")


def test_json_round_trip(engine, tmp_path, binary):
    result = compute_metrics(engine, dataset(engine, tmp_path, binary), "binary", slices=["country", "device"],
                             model="ctr-v2")
    path = result.save(tmp_path / "eval")
    raw = json.load(open(path))
    assert path.endswith("evaluation.json") and raw["format"] == "sluice.evaluation/1" and raw["model"] == "ctr-v2"
    assert EvalResult.load(tmp_path / "eval") == result
    html = result._repr_html_()
    assert "<table" in html and "calibration" in html and "FR" in html
