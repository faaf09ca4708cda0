"""DeepFM and DCN-v2 learn CTR data; the custom-model contract; clipping, accumulation,
learning-rate schedules and the bf16 guard, asserted by values."""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from sluice.train import MODELS, ParquetBatchLoader, TrainConfig, build_model, fit, load_model, save_model
from sluice.train.cpu_budget import loader_prefetch
from sluice.train.loop import _step, loss_function
from tests.unit.ctr_data import make_ctr

BASE = dict(epochs=2, batch_size=512, learning_rate=4e-3, shuffle_buffer=4000, seed=0, threads=1)


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    return make_ctr(tmp_path_factory.mktemp("ctr"), rows=30_000)


@pytest.mark.parametrize("name,hparams", [
    ("deepfm", {"embedding_dim": 8, "hidden": (32, 16)}),
    ("dcn_v2", {"cross_layers": 2, "hidden": (32, 16), "embedding_dim": 8}),
    ("dcn_v2", {"cross_layers": 2, "low_rank": 8, "hidden": (32,), "embedding_dim": 8}),
])
def test_interaction_models_learn_ctr_and_round_trip(ctr, tmp_path, name, hparams):
    train, ev, features, label = ctr
    assert name in MODELS
    model = build_model(name, features, "binary", seed=0, **hparams)
    cards = {f.name: f.cardinality for f in features if f.kind == "categorical"}
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding) and m.embedding_dim > 1]
    assert sorted(t.num_embeddings for t in tables) == sorted(cards.values())  # sized by the vocabularies
    result = fit(model, train, ev, features, label, "binary", TrainConfig(**BASE))
    assert result.best_metrics["eval_auc"] > 0.72
    save_model(model, str(tmp_path / "m"), {"features": features, "task": "binary"})
    loaded = load_model(str(tmp_path / "m"))
    batch = next(iter(ParquetBatchLoader(ev, features, label, batch_size=256, shuffle=False)))
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch.dense, batch.sparse), model(batch.dense, batch.sparse))


class _Probe(nn.Module):
    """A user model that records what forward receives."""

    seen: list = []

    def __init__(self, n_numeric: int, n_categorical: int, bad_shape: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(n_numeric, 1)
        self.bad_shape = bad_shape
        self.n_categorical = n_categorical

    def forward(self, dense, sparse):
        _Probe.seen.append((dense.dtype, tuple(dense.shape), sparse.dtype, tuple(sparse.shape)))
        out = self.linear(dense)
        return out if self.bad_shape else out.squeeze(-1)


def test_custom_model_contract(ctr):
    train, ev, features, label = ctr
    n_num = sum(f.kind == "numeric" for f in features)
    n_cat = len(features) - n_num
    _Probe.seen.clear()
    fit(_Probe(n_num, n_cat), train, None, features, label, "binary", TrainConfig(**{**BASE, "epochs": 1}))
    dtypes = {(d, s) for d, _, s, _ in _Probe.seen}
    assert dtypes == {(torch.float32, torch.int64)}
    assert {shape[1] for _, shape, _, _ in _Probe.seen} == {n_num}
    assert {shape[1] for _, _, _, shape in _Probe.seen} == {n_cat}
    assert _Probe.seen[0][1][0] == 512
    with pytest.raises(ValueError, match=r"logits of shape \(512, 1\).*needs \[B\]"):
        fit(_Probe(n_num, n_cat, bad_shape=True), train, None, features, label, "binary",
            TrainConfig(**{**BASE, "epochs": 1}))


def _dense_grad_norms() -> tuple[list[float], object]:
    norms: list[float] = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None and not p.grad.is_sparse]
        if grads:
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    return norms, register_optimizer_step_pre_hook(hook)


def test_gradient_clipping_bounds_the_norm(ctr):
    train, _, features, label = ctr
    small = dict(BASE, epochs=1, learning_rate=0.05)
    for clip in (None, 0.05):
        norms, handle = _dense_grad_norms()
        try:
            fit(build_model("mlp", features, "binary", seed=0, hidden=(32,), embedding_dim=4), train, None,
                features, label, "binary", TrainConfig(**small, grad_clip=clip))
        finally:
            handle.remove()
        assert len(norms) == 47  # ceil(24,000 / 512) optimizer steps
        if clip is None:
            assert max(norms) > 0.05  # so the bound below is the clipping's doing
        else:
            assert max(norms) <= 0.05 * (1 + 1e-4)


def test_accumulating_k_micro_batches_equals_one_big_batch(ctr):
    train, _, features, label = ctr
    big = next(iter(ParquetBatchLoader(train, features, label, batch_size=1024, shuffle=False)))
    loss_fn = loss_function("binary")

    def grads(micro: int) -> dict[str, torch.Tensor]:
        model = build_model("wide_and_deep", features, "binary", seed=0, hidden=(16,), embedding_dim=4)
        k = 1024 // micro
        for s in range(0, 1024, micro):
            part = type(big)(big.dense[s:s + micro], big.sparse[s:s + micro], big.label[s:s + micro])
            _step(model, part, loss_fn, "binary", "cpu", 1.0 / k, False)
        return {n: (p.grad.to_dense() if p.grad.is_sparse else p.grad) for n, p in model.named_parameters()}

    one, accumulated = grads(1024), grads(256)
    assert one.keys() == accumulated.keys()
    for name in one:
        torch.testing.assert_close(accumulated[name], one[name], rtol=1e-4, atol=1e-6)

    steps, handle = _dense_grad_norms()
    try:
        fit(build_model("mlp", features, "binary", seed=0, hidden=(16,), embedding_dim=4), train, None, features,
            label, "binary", TrainConfig(**dict(BASE, epochs=1, grad_accumulation=4)))
    finally:
        handle.remove()
    assert len(steps) == math.ceil(47 / 4)  # one optimizer step per 4 batches (the last one short)


def test_learning_rate_schedules(ctr):
    train, _, features, label = ctr
    lrs = {}
    for schedule in ("constant", "step", "cosine"):
        result = fit(build_model("logistic_regression", features, "binary", seed=0), train, None, features, label,
                     "binary", TrainConfig(**dict(BASE, epochs=3, learning_rate=0.01, lr_schedule=schedule,
                                                  lr_gamma=0.5, warmup_steps=5)))
        lrs[schedule] = [m["lr"] for m in result.history]
    assert lrs["constant"] == pytest.approx([0.01] * 3)
    assert lrs["step"] == pytest.approx([0.005, 0.0025, 0.00125])  # x0.5 after each epoch's 47 steps
    total = 3 * 47
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * (47 * (e + 1) - 5) / (total - 5))) for e in range(3)]
    assert lrs["cosine"] == pytest.approx(expected)
    assert lrs["cosine"][-1] == pytest.approx(0.0, abs=1e-12)


def test_bf16_is_cuda_only(ctr, caplog):
    train, ev, features, label = ctr
    with caplog.at_level(logging.WARNING, logger="sluice.train"):
        result = fit(build_model("mlp", features, "binary", seed=0, hidden=(16,), embedding_dim=4), train, ev,
                     features, label, "binary", TrainConfig(**dict(BASE, epochs=1, precision="bf16")))
    if not torch.cuda.is_available():
        assert "precision='bf16' needs CUDA" in caplog.text
    assert np.isfinite(result.best_metrics["eval_auc"])
    with pytest.raises(ValueError, match="precision"):
        fit(build_model("mlp", features, "binary", seed=0), train, ev, features, label, "binary",
            TrainConfig(precision="fp16"))


def test_loader_prefetches_in_a_thread_only_when_a_core_is_spare(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_prefetch(TrainConfig(prefetch=2), threads=cores, world=cores) == 2  # said: kept
    assert loader_prefetch(TrainConfig(), threads=1, world=cores) == 0  # workers take every core
    assert loader_prefetch(TrainConfig(), threads=cores, world=1) == 0
    if cores > 1:
        assert loader_prefetch(TrainConfig(), threads=1, world=cores - 1) == 4
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))  # torchrun: processes on this machine
        assert loader_prefetch(TrainConfig(), threads=1, world=1) == 0
    assert TrainConfig(prefetch=0).semantic() == TrainConfig().semantic()  # not part of the checkpoint's job


def test_sparse_embedding_bags_get_sparse_adam_and_a_step_updates_them():
    from sluice.train.optim import build_optimizer

    model = nn.ModuleDict({"bag": nn.EmbeddingBag(20, 3, mode="sum", sparse=True), "out": nn.Linear(3, 1)})
    optimizer = build_optimizer(model, TrainConfig(learning_rate=0.1))
    dense, sparse = optimizer.optimizers
    assert isinstance(sparse, torch.optim.SparseAdam) and sparse.param_groups[0]["params"] == [model["bag"].weight]
    before = model["bag"].weight.detach().clone()
    model["out"](model["bag"](torch.tensor([[1, 2], [2, 5]]))).sum().backward()
    optimizer.step()  # Adam alone would refuse the bag's sparse gradient
    changed = (model["bag"].weight.detach() != before).any(1).nonzero().squeeze(1).tolist()
    assert changed == [1, 2, 5]
