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
