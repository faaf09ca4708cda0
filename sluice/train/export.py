"""Save a trained model so it loads without the training code, and load it back. No pickle.

Two formats, chosen by the model:

- built-in models (:data:`sluice.train.models.MODELS`): ``model.safetensors`` holds the weights
  and ``model.json`` the architecture (name + hparams) to rebuild them;
- any other ``nn.Module``: ``torch.export`` captures the forward graph with its weights into
  ``model.pt2`` (batch size dynamic), so loading needs neither the class nor its source.

``model.json`` is written last (each file atomically), so its presence marks a complete save.
Its layout::

    {
      "format_version": 1,
      "format": "builtin" | "torch.export",
      "weights": "model.safetensors" | "model.pt2",
      "model": "wide_and_deep",          # built-in name; for torch.export the class path, informative
      "hparams": {"hidden": [256, 128], "dropout": 0.0, "embedding_dim": null},
      "task": "binary", "num_classes": null,
      "features": [{"name": "age_z", "kind": "numeric", "cardinality": null}, ...],
      "inputs": {"dense": ["age_z", ...], "sparse": ["country", ...]},   # column order of forward()
      "output": "logits [B]" | "logits [B, C]",
      "torch_version": "2.13.0",
      "extra": {...}                      # any other keys of the spec given to save_model
    }

Example::

    save_model(model, "out/model", {"features": specs, "task": "binary", "label": "clicked"})
    model = load_model("out/model")      # nn.Module in eval mode
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sluice.features import FeatureSpec
from sluice.train.models import MODELS, build_model, fuse_embeddings, output_dim

__all__ = ["ExportedModel", "ModelExportError", "load_model", "read_model_spec", "save_model"]

FORMAT_VERSION = 1
SPEC_FILE = "model.json"


class ModelExportError(RuntimeError):
    """A non-builtin model could not be captured by ``torch.export``."""


class ExportedModel(nn.Module):
    """A loaded ``torch.export`` program behaving like any model: ``forward(dense, sparse)``.

    The graph was captured in eval mode, so ``train()``/``eval()`` only flip the flag (the raw
    exported module refuses them, which would break callers that switch modes generically).
    """

    def __init__(self, program_module: nn.Module) -> None:
        super().__init__()
        self.program = program_module
        self.training = False

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        return self.program(dense, sparse)

    def train(self, mode: bool = True) -> ExportedModel:
        self.training = mode
        return self


def _builtin_name(model: nn.Module) -> str | None:
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and MODELS.get(name) is type(model) else None


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # keeps the suffix (.pt2)
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_model(model: nn.Module, directory: str | os.PathLike[str], spec: dict[str, Any]) -> dict[str, Any]:
    """Write ``model`` to ``directory``; returns the model.json content.

    ``spec`` needs ``features`` (FeatureSpec objects or their dicts) and ``task``, plus
    ``num_classes`` for multiclass; other keys (label name, metrics ...) land in ``extra``.
    Raises :class:`ModelExportError` when a custom module cannot be exported.
    """
    spec = dict(spec)
    try:
        features = [f if isinstance(f, FeatureSpec) else FeatureSpec.from_dict(f) for f in spec.pop("features")]
        task = spec.pop("task")
    except KeyError as exc:
        raise ValueError(f"save_model: spec needs {exc.args[0]!r} (and 'features', 'task')") from None
    num_classes = spec.pop("num_classes", None)
    output_dim(task, num_classes)
    name = _builtin_name(model)
    program = None if name is not None else _export(model, features)  # fail before touching disk
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION}
    if name is not None:
        if (model.task, model.num_classes) != (task, num_classes):  # type: ignore[attr-defined]
            raise ValueError(f"spec says task={task!r}, num_classes={num_classes!r}; the model was built for "
                             f"task={model.task!r}, num_classes={model.num_classes!r}")  # type: ignore[attr-defined]
        from safetensors.torch import save_file

        # Non-persistent buffers (embedding offsets) are rebuilt from the features, not stored.
        # A view into a larger tensor (fused embeddings of a loaded model) is copied out:
        # safetensors refuses tensors that share memory.
        state = {k: _own_storage(v.detach().cpu().contiguous()) for k, v in model.state_dict().items()}
        _write_atomic(out / "model.safetensors", lambda p: save_file(state, p, metadata={"sluice_model": name}))
        meta.update({"format": "builtin", "weights": "model.safetensors", "model": name, "hparams": model.hparams})  # type: ignore[attr-defined]
    else:
        _write_atomic(out / "model.pt2", lambda p: torch.export.save(program, p))
        cls = type(model)
        meta.update({"format": "torch.export", "weights": "model.pt2", "model": f"{cls.__module__}.{cls.__qualname__}", "hparams": {}})
    meta.update({
        "task": task,
        "num_classes": num_classes,
        "features": [f.to_dict() for f in features],
        "inputs": {
            "dense": [f.name for f in features if f.kind == "numeric"],
            "sparse": [f.name for f in features if f.kind == "categorical"],
        },
        "output": "logits [B, C]" if task == "multiclass" else "logits [B]",
        "torch_version": torch.__version__.split("+")[0],
        "extra": spec,
    })
    text = json.dumps(meta, indent=2, default=str)
    _write_atomic(out / SPEC_FILE, lambda p: Path(p).write_text(text))
    return meta


def _example_inputs(features: list[FeatureSpec], batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    n_num = sum(1 for f in features if f.kind == "numeric")
    cards = [int(f.cardinality or 1) for f in features if f.kind == "categorical"]
    gen = torch.Generator().manual_seed(0)
    dense = torch.randn(batch, n_num, generator=gen)
    sparse = torch.stack([torch.randint(0, c, (batch,), generator=gen) for c in cards], 1) if cards else torch.zeros(batch, 0, dtype=torch.long)
    return dense, sparse


def _export(model: nn.Module, features: list[FeatureSpec]) -> torch.export.ExportedProgram:
    """Capture ``model`` in eval mode on CPU with a dynamic batch dimension, and check it."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ModelExportError("move the model to CPU (model.cpu()) before saving: the export is loaded for CPU serving")
    was_training = model.training
    model.eval()
    dense, sparse = _example_inputs(features)
    batch = torch.export.Dim("batch")
    try:
        program = torch.export.export(model, (dense, sparse), dynamic_shapes=({0: batch}, {0: batch}))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelExportError(
            f"cannot save {type(model).__name__}: torch.export failed ({type(exc).__name__}: {first}). "
            "Sluice saves custom models as exported programs so they load without your code. Make "
            "forward(dense, sparse) exportable: no Python branching on tensor values (use torch.where or "
            "torch.cond), no .item()/.tolist()/.numpy(), no batch size baked in (it must stay dynamic); see "
            "https://pytorch.org/docs/stable/export.html. Or use a built-in model (sluice.train.MODELS)."
        ) from exc
    finally:
        model.train(was_training)
    with torch.inference_mode():
        model.eval()
        try:
            expected, got = model(dense, sparse), program.module()(dense, sparse)
        finally:
            model.train(was_training)
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
        raise ModelExportError(f"torch.export of {type(model).__name__} does not reproduce its outputs; check forward() for untraceable state")
    return program


def read_model_spec(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The model.json of a saved model (features, task, inputs ...), without loading weights."""
    path = Path(directory) / SPEC_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {directory} is not a saved model (or the save did not finish)")
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {meta.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
    return meta


def _own_storage(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.clone() if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size() else tensor


def load_model(directory: str | os.PathLike[str]) -> nn.Module:
    """Rebuild the saved model in eval mode on CPU: ``forward(dense, sparse) -> logits``."""
    meta = read_model_spec(directory)
    weights = Path(directory) / meta["weights"]
    if meta["format"] == "builtin":
        from safetensors.torch import load_file

        features = [FeatureSpec.from_dict(f) for f in meta["features"]]
        model = build_model(meta["model"], features, meta["task"], meta["num_classes"], **meta["hparams"])
        model.load_state_dict(load_file(str(weights)), strict=True)
        return fuse_embeddings(model).eval()
    if meta["format"] == "torch.export":
        return ExportedModel(torch.export.load(str(weights)).module())
    raise ValueError(f"{directory}: unknown model format {meta['format']!r}")
