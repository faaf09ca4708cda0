"""Built-in models learn synthetic tasks through ``fit``; early stopping restores the best epoch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from sluice.features import FeatureSpec
from sluice.train import (
    MODELS,
    ParquetBatchLoader,
    TrainConfig,
    build_model,
    default_embedding_dim,
    evaluate,
    fit,
    predict,
)

CARDS = {"c0": 10, "c1": 40}
FEATURES = [FeatureSpec(f"x{i}", "numeric") for i in range(4)] + [
    FeatureSpec(name, "categorical", card) for name, card in CARDS.items()
]


def _features(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    cols = {f"x{i}": rng.standard_normal(n).astype(np.float32) for i in range(4)}
    cols.update({name: rng.integers(0, card, n) for name, card in CARDS.items()})
    return cols


def _write(path, cols: dict[str, np.ndarray]) -> str:
    pq.write_table(pa.table(cols), path, row_group_size=1000)
    return str(path)


def _binary(directory, n_train=6000, n_eval=2000, flip_eval=False) -> tuple[list[str], list[str]]:
    """y ~ Bernoulli(sigmoid(linear in x + per-id effects)): the Bayes AUC is about 0.93."""
    rng = np.random.default_rng(0)
    effects = {name: rng.normal(0, 1.5, card) for name, card in CARDS.items()}

    def make(n):
        cols = _features(rng, n)
        logit = 2.0 * cols["x0"] - 1.5 * cols["x1"] + sum(effects[c][cols[c]] for c in CARDS)
        cols["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
        return cols

    train, ev = make(n_train), make(n_eval)
    if flip_eval:
        ev["y"] = 1 - ev["y"]
    return [_write(directory / "train.parquet", train)], [_write(directory / "eval.parquet", ev)]


def _multiclass(directory) -> tuple[list[str], list[str]]:
    """class = argmax of three linear scores plus a per-id bias and small noise."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 2, (4, 3))
    bias = rng.normal(0, 2, (CARDS["c0"], 3))

    def make(n):
        cols = _features(rng, n)
        x = np.stack([cols[f"x{i}"] for i in range(4)], 1)
        scores = x @ w + bias[cols["c0"]] + rng.normal(0, 0.3, (n, 3))
        cols["y"] = scores.argmax(1)
        return cols

    return [_write(directory / "train.parquet", make(6000))], [_write(directory / "eval.parquet", make(2000))]


@pytest.fixture(scope="module")
def binary_files(tmp_path_factory):
    return _binary(tmp_path_factory.mktemp("binary"))


CONFIG = dict(epochs=4, batch_size=256, learning_rate=0.02, shuffle_buffer=2000, threads=1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builtin_models_learn_binary_task(binary_files, name):
    train, ev = binary_files
    model = build_model(name, FEATURES, "binary", seed=0, **({} if name == "logistic_regression" else {"hidden": (32, 16)}))
    seen = []
    result = fit(model, train, ev, FEATURES, "y", "binary", TrainConfig(**CONFIG), on_epoch=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == list(range(4))
    assert set(seen[0][1]) >= {"train_loss", "eval_loss", "eval_auc", "samples_per_sec", "epoch_seconds"}
    assert result.history[-1]["eval_auc"] > 0.85, result.history
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] + 1e-6
    assert not model.training
    # predict gives probabilities consistent with the loop's logits.
    x = torch.randn(5, 4)
    ids = torch.zeros(5, 2, dtype=torch.long)
    p = predict(model, x, ids, "binary")
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()
    with torch.no_grad():
        assert np.allclose(p, torch.sigmoid(model(x, ids)).numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["logistic_regression", "wide_and_deep"])
def test_multiclass_accuracy(tmp_path, name):
    train, ev = _multiclass(tmp_path)
    model = build_model(name, FEATURES, "multiclass", num_classes=3, seed=0)
    result = fit(model, train, ev, FEATURES, "y", "multiclass", TrainConfig(**CONFIG))
    assert result.history[-1]["eval_accuracy"] > 0.8, result.history
    p = predict(model, torch.randn(4, 4), torch.zeros(4, 2, dtype=torch.long), "multiclass")
    assert p.shape == (4, 3) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_regression_task(tmp_path):
    rng = np.random.default_rng(2)
    cols = _features(rng, 4000)
    cols["y"] = (3 * cols["x0"] - cols["x2"] + rng.normal(0, 0.1, 4000)).astype(np.float32)
    files = [_write(tmp_path / "r.parquet", cols)]
    model = build_model("mlp", FEATURES, "regression", seed=0, hidden=(16,))
    result = fit(model, files, files, FEATURES, "y", "regression", TrainConfig(**CONFIG))
    assert result.history[-1]["eval_rmse"] < 0.5  # the target's std is about 3.2


def test_early_stopping_restores_best_weights(tmp_path):
    # Eval labels are flipped: the better the model fits train, the worse eval gets after epoch 0.
    train, ev = _binary(tmp_path, n_train=3000, n_eval=1000, flip_eval=True)
    model = build_model("logistic_regression", FEATURES, "binary", seed=0)
    config = TrainConfig(**{**CONFIG, "epochs": 10}, early_stopping_patience=2)
    result = fit(model, train, ev, FEATURES, "y", "binary", config)
    losses = [m["eval_loss"] for m in result.history]
    assert result.stopped_early and result.epochs_run == 3
    assert result.best_epoch == int(np.argmin(losses)) == 0
    assert losses[2] > losses[0]
    loader = ParquetBatchLoader(ev, FEATURES, "y", shuffle=False)
    assert evaluate(model, loader, "binary")["loss"] == pytest.approx(losses[0], rel=1e-6)
    assert result.best_metrics == result.history[0]


def test_custom_factory_and_shape_check(binary_files):
    train, ev = binary_files

    def factory(features, task, num_classes):
        return nn.Sequential()  # wrong contract: forward takes two tensors

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, dense, sparse):
            return self.lin(dense)  # [B, 2] for a binary task

    with pytest.raises(ValueError, match="shape"):
        fit(build_model(lambda f, t, c: Bad(), FEATURES, "binary"), train, ev, FEATURES, "y", "binary", TrainConfig(epochs=1))
    with pytest.raises(TypeError, match="only for built-in"):
        build_model(factory, FEATURES, "binary", hidden=(4,))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope", FEATURES, "binary")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", FEATURES, "multiclass")


def test_embedding_dims():
    assert default_embedding_dim(1) == 6 and default_embedding_dim(10**9) == 32
    model = build_model("mlp", FEATURES, "binary", embedding_dim={"c1": 3})
    dims = [t.embedding_dim for t in model.embeddings.tables]
    assert dims == [default_embedding_dim(10), 3]
    assert build_model("wide_and_deep", FEATURES, "binary", embedding_dim=5).embeddings.width == 10


def test_training_is_deterministic_under_seed(binary_files):
    train, ev = binary_files
    runs = []
    for _ in range(2):
        model = build_model("mlp", FEATURES, "binary", seed=3, hidden=(8,), dropout=0.1)
        fit(model, train, None, FEATURES, "y", "binary", TrainConfig(**{**CONFIG, "epochs": 1}))
        runs.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_models_with_one_kind_of_feature(name, kind):
    features = [f for f in FEATURES if f.kind == kind]
    model = build_model(name, features, "binary", seed=0)
    n_num = sum(f.kind == "numeric" for f in features)
    dense = torch.randn(3, n_num)
    sparse = torch.zeros(3, len(features) - n_num, dtype=torch.long)
    out = model(dense, sparse)
    assert out.shape == (3,)
    out.sum().backward()
