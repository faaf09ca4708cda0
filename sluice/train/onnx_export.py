"""Export a trained model to ONNX (optional: ``pip install 'sluice-ml[onnx]'``).

The ONNX graph has the inputs of ``forward(dense, sparse)``: ``dense`` (float32 ``[batch,
n_numeric]``, the numeric features in ``features`` order) and ``sparse`` (int64 ``[batch,
n_categorical]``, the categorical ids in order), and one output ``logits`` (``[batch]`` or
``[batch, classes]``); the batch axis is dynamic. The column names are stored in the model's
metadata (``dense_columns``, ``sparse_columns``, JSON lists). Every built-in model
(logistic_regression, mlp, wide_and_deep, deepfm, dcn_v2) exports and gives the torch model's
predictions (tested to 1e-5 with onnxruntime). It uses torch's TorchScript-based exporter,
which needs no extra package beyond ``onnx``.

Example::

    from sluice.train import export_onnx, load_model, read_model_spec
    export_onnx(load_model("out/model"), specs, "out/model.onnx")
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["export_onnx"]


def export_onnx(model: Any, features: Sequence[Any], path: str | os.PathLike[str], *,
                opset_version: int = 17) -> str:
    """Write ``model`` (an ``nn.Module`` with ``forward(dense, sparse)``) as ONNX to ``path``.

    ``features`` are the model's :class:`~sluice.features.FeatureSpec` list (as given to
    ``build_model``). Returns the path written. The model is put in eval mode.

    Example::

        export_onnx(model, specs, "model.onnx")
        session = onnxruntime.InferenceSession("model.onnx")
        logits = session.run(None, {"dense": dense_np, "sparse": sparse_np})[0]
    """
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("ONNX export needs onnx: pip install 'sluice-ml[onnx]'") from None
    import torch

    features = list(features)
    if not features:
        raise ValueError("export_onnx: features must list the model's FeatureSpecs, got none")
    dense_cols = [f.name for f in features if f.kind == "numeric"]
    sparse_cols = [f.name for f in features if f.kind == "categorical"]
    batch = 2
    dense = torch.zeros((batch, len(dense_cols)), dtype=torch.float32)
    sparse = torch.zeros((batch, len(sparse_cols)), dtype=torch.int64)
    model.eval()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy-exporter notice and shape-trace warnings
        torch.onnx.export(model, (dense, sparse), tmp, input_names=["dense", "sparse"], output_names=["logits"],
                          dynamic_axes={"dense": {0: "batch"}, "sparse": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset_version, dynamo=False)
    graph = onnx.load(tmp)
    for key, value in (("dense_columns", json.dumps(dense_cols)), ("sparse_columns", json.dumps(sparse_cols)),
                       ("producer", "sluice")):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    onnx.save(graph, tmp)
    os.replace(tmp, path)
    return path
