"""export_onnx: every built-in model, binary and multiclass, gives the torch model's predictions
under onnxruntime (1e-5), with a dynamic batch axis and the column order in the metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sluice.features import FeatureSpec
from sluice.train import MODELS, build_model, export_onnx, load_model, save_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

FEATURES = [FeatureSpec("a", "numeric"), FeatureSpec("b", "numeric"),
            FeatureSpec("c", "categorical", 5), FeatureSpec("d", "categorical", 300)]


def _inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(n, 2, generator=g)
    sparse = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(0, 300, (n,), generator=g)], 1)
    return dense, sparse


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("task,num_classes", [("binary", None), ("multiclass", 4)])
def test_onnx_predictions_match_torch(tmp_path, name, task, num_classes):
    hp = {} if name == "logistic_regression" else {"hidden": [16, 8], "embedding_dim": 3}
    if name == "dcn_v2":
        hp.update(cross_layers=2, low_rank=2)
    model = build_model(name, FEATURES, task, num_classes, seed=0, **hp)
    with torch.no_grad():  # non-default weights everywhere (the wide part starts at zero)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    save_model(model, tmp_path / "m", {"features": FEATURES, "task": task, "num_classes": num_classes})
    loaded = load_model(tmp_path / "m")  # what a user exports: the saved model
    path = export_onnx(loaded, FEATURES, tmp_path / "out" / "model.onnx")
    session = ort.InferenceSession(path)
    assert [i.name for i in session.get_inputs()] == ["dense", "sparse"]
    for n, seed in ((1, 1), (257, 2)):  # the batch axis is dynamic
        dense, sparse = _inputs(n, seed)
        got = session.run(None, {"dense": dense.numpy(), "sparse": sparse.numpy()})[0]
        with torch.no_grad():
            want = model.eval()(dense, sparse).numpy()
        assert got.shape == want.shape == ((n,) if task == "binary" else (n, 4))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.abs(want).max() > 1e-3  # a real, non-trivial output was compared
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta["dense_columns"]) == ["a", "b"] and json.loads(meta["sparse_columns"]) == ["c", "d"]


def test_export_needs_features(tmp_path):
    model = build_model("logistic_regression", FEATURES, "binary", seed=0)
    with pytest.raises(ValueError, match="export_onnx: features must list the model's FeatureSpecs"):
        export_onnx(model, [], tmp_path / "m.onnx")
