"""save_model / load_model: identical predictions after reload, builtin (safetensors) and custom (torch.export)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from sluice.features import FeatureSpec
from sluice.train import (
    MODELS,
    ExportedModel,
    ModelExportError,
    build_model,
    load_model,
    predict,
    read_model_spec,
    save_model,
)

FEATURES = [FeatureSpec("a", "numeric"), FeatureSpec("b", "numeric"),
            FeatureSpec("c", "categorical", 5), FeatureSpec("d", "categorical", 300)]


def _inputs(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    dense = torch.randn(n, 2, generator=g)
    sparse = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(0, 300, (n,), generator=g)], 1)
    return dense, sparse


def _perturb(model: nn.Module) -> None:
    """Non-default weights everywhere (the wide part starts at zero), as after training."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("task,num_classes", [("binary", None), ("multiclass", 4)])
def test_builtin_round_trip(tmp_path, name, task, num_classes):
    hp = {} if name == "logistic_regression" else {"hidden": [16, 8], "dropout": 0.2, "embedding_dim": {"d": 3}}
    if name == "deepfm":  # FM needs one embedding width for every field
        hp["embedding_dim"] = 3
    if name == "dcn_v2":
        hp.update(cross_layers=2, low_rank=2)
    model = build_model(name, FEATURES, task, num_classes, seed=0, **hp)
    _perturb(model)
    model.eval()
    meta = save_model(model, tmp_path / "m", {"features": FEATURES, "task": task, "num_classes": num_classes, "label": "y"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    on_disk = json.loads((tmp_path / "m" / "model.json").read_text())
    assert on_disk == meta == read_model_spec(tmp_path / "m")
    assert on_disk["format"] == "builtin" and on_disk["model"] == name and on_disk["hparams"] == ({} if not hp else hp)
    assert on_disk["inputs"] == {"dense": ["a", "b"], "sparse": ["c", "d"]} and on_disk["extra"] == {"label": "y"}
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and not loaded.training
    dense, sparse = _inputs()
    assert np.array_equal(predict(model, dense, sparse, task), predict(loaded, dense, sparse, task))


def test_loaded_model_fuses_embeddings_and_stays_trainable(tmp_path):
    """load_model stores each width's tables in one tensor (one lookup per width when serving);
    the values, a re-save, training the loaded model and a device move all still work."""
    features = [*FEATURES, FeatureSpec("e", "categorical", 40)]
    model = build_model("wide_and_deep", features, "binary", seed=0, hidden=[8], embedding_dim={"c": 4, "d": 3, "e": 4})
    _perturb(model)
    save_model(model.eval(), tmp_path / "m", {"features": features, "task": "binary"})
    loaded = load_model(tmp_path / "m")
    groups = loaded.embeddings._fused
    assert sorted(g.weight.shape[1] for g in groups) == [3, 4]  # c and e share width 4, d has 3
    dense, _ = _inputs(9)
    sparse = torch.stack([torch.arange(9) % 5, torch.arange(9) * 31 % 300, torch.arange(9) * 4 % 40], 1)
    with torch.inference_mode():
        fused = loaded.embeddings(sparse)
    with torch.no_grad():
        per_table = torch.cat([t(sparse[:, i]) for i, t in enumerate(loaded.embeddings.tables)], dim=1)
    assert torch.equal(fused, per_table)
    assert np.array_equal(predict(model, dense, sparse, "binary"), predict(loaded, dense, sparse, "binary"))
    save_model(loaded, tmp_path / "again", {"features": features, "task": "binary"})  # shared storage copied out
    assert np.array_equal(predict(load_model(tmp_path / "again"), dense, sparse, "binary"),
                          predict(model, dense, sparse, "binary"))
    loaded.train()
    loaded(dense, sparse).sum().backward()  # training goes table by table: every table gets its gradient
    assert all(t.weight.grad is not None for t in loaded.embeddings.tables)
    with torch.no_grad():
        loaded.embeddings.tables[0].weight.add_(1.0)  # an update through the view reaches the fused tensor
    with torch.inference_mode():
        assert torch.equal(loaded.embeddings(sparse)[:, :4], loaded.embeddings.tables[0](sparse[:, 0]))
    moved = loaded.to(torch.float64)  # weights replaced: the fused tensors are stale, so not used
    assert not moved.embeddings._fused_intact()
    with torch.inference_mode():
        assert moved.embeddings(sparse).dtype == torch.float64


class TwoTower(nn.Module):
    """A user's own model: forward(dense, sparse) -> logits [B]."""

    def __init__(self, features, task, num_classes):
        super().__init__()
        cards = [f.cardinality for f in features if f.kind == "categorical"]
        self.emb = nn.ModuleList(nn.Embedding(c, 4) for c in cards)
        self.dense = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Dropout(0.5))

    def forward(self, dense, sparse):
        cat = sum(e(sparse[:, i]) for i, e in enumerate(self.emb))
        return (self.dense(dense) * cat).sum(-1)


def test_custom_module_round_trip_via_torch_export(tmp_path):
    model = build_model(TwoTower, FEATURES, "binary", seed=0)
    model.train()  # save_model exports in eval mode and restores the caller's mode
    meta = save_model(model, tmp_path / "m", {"features": FEATURES, "task": "binary"})
    assert model.training
    assert meta["format"] == "torch.export" and meta["weights"] == "model.pt2"
    assert meta["model"].endswith("TwoTower")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, ExportedModel) and not loaded.training
    loaded.eval()  # generic callers switch modes; the raw exported module would refuse
    model.eval()
    for n in (1, 64, 1000):  # the batch dimension stays dynamic
        dense, sparse = _inputs(n)
        assert np.array_equal(predict(model, dense, sparse, "binary"), predict(loaded, dense, sparse, "binary"))


class DataDependent(TwoTower):
    def forward(self, dense, sparse):
        if dense.sum() > 0:  # Python branch on a tensor value: not exportable
            return dense.sum(-1)
        return -dense.sum(-1)


def test_unexportable_module_raises_clear_error(tmp_path):
    model = DataDependent(FEATURES, "binary", None)
    with pytest.raises(ModelExportError, match="torch.cond"):
        save_model(model, tmp_path / "m", {"features": FEATURES, "task": "binary"})
    assert not (tmp_path / "m" / "model.json").exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved model"):
        load_model(tmp_path)
    model = build_model("mlp", FEATURES, "binary")
    with pytest.raises(ValueError, match="task"):
        save_model(model, tmp_path / "m", {"features": FEATURES, "task": "regression"})
    with pytest.raises(ValueError, match="spec needs"):
        save_model(model, tmp_path / "m", {"features": FEATURES})
