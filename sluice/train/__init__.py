"""Training: Parquet shards -> PyTorch batches -> a trained, saved model.

Submodules, one idea each: ``loader`` (ParquetBatchLoader), ``models`` (built-ins, registry),
``interactions`` (DeepFM, DCN-v2), ``loop`` (fit), ``distributed`` (DDP worker processes),
``checkpoint`` (atomic checkpoints), ``metrics`` (exact AUC ...), ``export`` (save/load), ``predict``,
``onnx_export`` (export_onnx, optional extra ``onnx``), ``tuning`` (optuna search; ``sluice.train.tuning``).
Names are resolved lazily so ``import sluice.train`` does not import torch (the CLI starts fast).

Example::

    from sluice.train import TrainConfig, build_model, fit, save_model
    model = build_model("wide_and_deep", specs, "binary", seed=0)
    result = fit(model, train_files, eval_files, specs, "clicked", "binary", TrainConfig(epochs=3))
    save_model(model, "out/model", {"features": specs, "task": "binary"})
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Batch": "loader",
    "ParquetBatchLoader": "loader",
    "RowGroup": "loader",
    "label_dtype_for": "loader",
    "feature_arrays": "loader",
    "MODELS": "models",
    "TASKS": "models",
    "LogisticRegression": "models",
    "MLP": "models",
    "WideAndDeep": "models",
    "DeepFM": "interactions",
    "DCNv2": "interactions",
    "WorkerError": "distributed",
    "build_model": "models",
    "default_embedding_dim": "models",
    "TrainConfig": "loop",
    "TrainResult": "loop",
    "fit": "loop",
    "evaluate": "loop",
    "train_epoch": "loop",
    "loss_function": "loop",
    "auc": "metrics",
    "accuracy": "metrics",
    "rmse": "metrics",
    "ExportedModel": "export",
    "ModelExportError": "export",
    "save_model": "export",
    "load_model": "export",
    "read_model_spec": "export",
    "export_onnx": "onnx_export",
    "predict": "predict",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from sluice.train.export import ExportedModel, ModelExportError, load_model, read_model_spec, save_model
    from sluice.train.onnx_export import export_onnx
    from sluice.train.distributed import WorkerError
    from sluice.train.interactions import DCNv2, DeepFM
    from sluice.train.loader import Batch, ParquetBatchLoader, RowGroup, feature_arrays, label_dtype_for
    from sluice.train.loop import TrainConfig, TrainResult, evaluate, fit, loss_function, train_epoch
    from sluice.train.metrics import accuracy, auc, rmse
    from sluice.train.models import MODELS, MLP, TASKS, LogisticRegression, WideAndDeep, build_model, default_embedding_dim
    from sluice.train.predict import predict


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sluice.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sluice.train.{module}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
