"""The training loop: epochs over Parquet shards, per-epoch eval metrics, early stopping.

One process for now; the seams for distributed data parallel are the loader's
``rank``/``world_size`` and :func:`train_epoch` / :func:`evaluate`, which a DDP launcher
can call on a wrapped model.

Example::

    model = build_model("mlp", specs, "binary", seed=0)
    result = fit(model, train_files, eval_files, specs, "clicked", "binary",
                 TrainConfig(epochs=5, early_stopping_patience=2),
                 on_epoch=lambda e, m: print(e, m))
    result.best_metrics   # {'train_loss': 0.41, 'eval_loss': 0.43, 'eval_auc': 0.87, ...}
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sluice.features import FeatureSpec
from sluice.train.loader import ParquetBatchLoader, label_dtype_for
from sluice.train.metrics import task_metrics
from sluice.train.models import TASKS

__all__ = ["TrainConfig", "TrainResult", "default_threads", "evaluate", "fit", "loss_function", "train_epoch"]

OnEpoch = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """How to train. ``threads`` sets torch's intra-op threads; ``None`` means every core except
    those the loader's ``num_workers`` reader threads use (at least 1): on a 2-core machine two
    torch threads beside a busy reader thread ran up to 10x slower than one (spinning OpenMP
    workers starve the reader). ``early_stopping_patience=None`` trains all
    epochs and keeps the last weights, an integer stops after that many epochs without
    improvement of ``early_stopping_metric`` and restores the best epoch's weights. The metric's
    direction is inferred: names with ``loss``/``rmse`` are minimized, others (auc, accuracy)
    maximized. Without eval files the monitored metric falls back to ``train_loss``."""

    epochs: int = 10
    batch_size: int = 4096
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    weight_decay: float = 0.0
    seed: int = 0
    shuffle_buffer: int = 100_000
    early_stopping_patience: int | None = None
    early_stopping_metric: str = "eval_loss"
    grad_clip: float | None = None  # max global L2 norm of gradients
    threads: int | None = None
    num_workers: int = 1  # loader reader threads
    eval_batch_size: int | None = None  # default: batch_size
    device: str = "cpu"


@dataclass
class TrainResult:
    """What :func:`fit` did: per-epoch metrics (``history[i]`` is epoch ``i``), the epoch whose
    weights the model holds, and whether early stopping ended training."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def default_threads(num_workers: int = 1) -> int:
    """Torch threads when the config names none: the cores the loader leaves free, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - max(1, num_workers))


def loss_function(task: str) -> nn.Module:
    """BCE-with-logits for binary, cross-entropy for multiclass, MSE for regression (mean over rows)."""
    if task == "binary":
        return nn.BCEWithLogitsLoss()
    if task == "multiclass":
        return nn.CrossEntropyLoss()
    if task == "regression":
        return nn.MSELoss()
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


class SplitOptimizer:
    """Two optimizers behind one ``step``: a sparse one for embedding tables with sparse
    gradients (only the looked-up rows change, so a step costs the batch, not the vocabulary)
    and the configured one for every other parameter.

    Weight decay applies to the dense parameters only.
    """

    def __init__(self, dense: torch.optim.Optimizer | None, sparse: torch.optim.Optimizer | None) -> None:
        self.optimizers = [o for o in (dense, sparse) if o is not None]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> list[dict]:
        return [o.state_dict() for o in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        for o, state in zip(self.optimizers, states):
            o.load_state_dict(state)


def _sparse_parameters(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}


def _optimizer(model: nn.Module, config: TrainConfig) -> SplitOptimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    sparse_ids = _sparse_parameters(model)
    dense = [p for p in params if id(p) not in sparse_ids]
    sparse = [p for p in params if id(p) in sparse_ids]
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":  # SGD handles sparse gradients itself
        return SplitOptimizer(torch.optim.SGD(params, lr=lr, weight_decay=wd), None)
    if config.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {config.optimizer!r}")
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return SplitOptimizer(cls(dense, lr=lr, weight_decay=wd) if dense else None,
                          torch.optim.SparseAdam(sparse, lr=lr) if sparse else None)


def _check_logits(logits: torch.Tensor, n: int, task: str) -> None:
    """A custom model with the wrong output shape would broadcast silently in the loss: refuse."""
    ok = logits.dim() == 2 and logits.shape[0] == n if task == "multiclass" else tuple(logits.shape) == (n,)
    if not ok:
        want = "[B, num_classes]" if task == "multiclass" else "[B]"
        raise ValueError(f"model returned logits of shape {tuple(logits.shape)} for a batch of {n}; task {task!r} needs {want}")


def train_epoch(
    model: nn.Module,
    loader: ParquetBatchLoader,
    optimizer: SplitOptimizer,
    loss_fn: nn.Module,
    task: str,
    grad_clip: float | None = None,
    device: str | torch.device = "cpu",
) -> tuple[float, int]:
    """One pass over ``loader``; returns (mean training loss, rows seen)."""
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on device: no sync per step
    rows = 0
    for batch in loader:
        dense, sparse, y = (t.to(device, non_blocking=True) for t in (batch.dense, batch.sparse, batch.label))
        n = len(batch)
        if task == "binary" and bool(((y < 0) | (y > 1)).any()):
            raise ValueError("binary labels must be in [0, 1]; found values outside (is the task right?)")
        optimizer.zero_grad(set_to_none=True)
        logits = model(dense, sparse)
        _check_logits(logits, n, task)
        loss = loss_fn(logits, y)
        loss.backward()
        if grad_clip:  # dense gradients only: embedding rows are updated sparsely
            nn.utils.clip_grad_norm_([p for p in model.parameters()
                                      if p.grad is not None and not p.grad.is_sparse], grad_clip)
        optimizer.step()
        total += loss.detach() * n
        rows += n
    return (total.item() / rows if rows else float("nan")), rows


def evaluate(model: nn.Module, loader: ParquetBatchLoader, task: str, device: str | torch.device = "cpu") -> dict[str, float]:
    """Loss and the task's metric over ``loader`` (``{"loss": ..., "auc"|"accuracy"|"rmse": ...}``).

    Keeps every row's logits for the exact metric: O(rows) memory, 4 bytes per row and class.
    """
    loss_fn = loss_function(task)
    loss_fn.reduction = "sum"
    model.eval()
    total, rows = 0.0, 0
    logits_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    with torch.inference_mode():
        for batch in loader:
            dense, sparse, y = (t.to(device) for t in (batch.dense, batch.sparse, batch.label))
            logits = model(dense, sparse)
            _check_logits(logits, len(batch), task)
            total += float(loss_fn(logits, y))
            rows += len(batch)
            logits_parts.append(logits.float().cpu().numpy())
            label_parts.append(batch.label.numpy())
    if not rows:
        return {"loss": float("nan")}
    metrics = {"loss": total / rows}
    metrics.update(task_metrics(task, np.concatenate(label_parts), np.concatenate(logits_parts)))
    return metrics


def fit(
    model: nn.Module,
    train_files: Sequence[str],
    eval_files: Sequence[str] | None,
    features: Sequence[FeatureSpec],
    label: str,
    task: str,
    config: TrainConfig | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """Train ``model`` in place on Parquet shards; evaluate on ``eval_files`` after every epoch.

    Per epoch (0-based) ``on_epoch(epoch, metrics)`` gets ``train_loss``, ``eval_loss``,
    ``eval_<metric>`` (auc / accuracy / rmse), ``samples_per_sec`` (training rows per second)
    and ``epoch_seconds``. The model is returned to eval mode at the end.
    """
    config = config or TrainConfig()
    loss_fn = loss_function(task)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or default_threads(config.num_workers))
    torch.manual_seed(config.seed)  # dropout and any other randomness inside the model
    device = torch.device(config.device)
    model.to(device)
    try:
        train_loader = ParquetBatchLoader(
            train_files, features, label,
            batch_size=config.batch_size, shuffle=True, shuffle_buffer=config.shuffle_buffer,
            seed=config.seed, label_dtype=label_dtype_for(task), num_workers=config.num_workers,
        )
        eval_loader = None
        if eval_files:
            eval_loader = ParquetBatchLoader(
                eval_files, features, label,
                batch_size=config.eval_batch_size or config.batch_size, shuffle=False,
                label_dtype=label_dtype_for(task), num_workers=config.num_workers,
            )
        monitor = config.early_stopping_metric if eval_loader is not None else "train_loss"
        minimize = "loss" in monitor or "rmse" in monitor
        optimizer = _optimizer(model, config)
        result = TrainResult()
        best_value: float | None = None
        best_state: dict[str, torch.Tensor] | None = None
        stale = 0
        start = time.perf_counter()
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            train_loader.set_epoch(epoch)
            train_loss, rows = train_epoch(model, train_loader, optimizer, loss_fn, task, config.grad_clip, device)
            train_seconds = time.perf_counter() - t0
            metrics = {"train_loss": train_loss, "samples_per_sec": rows / train_seconds if train_seconds else 0.0}
            if eval_loader is not None:
                metrics.update({f"eval_{k}": v for k, v in evaluate(model, eval_loader, task, device).items()})
            metrics["epoch_seconds"] = time.perf_counter() - t0
            result.history.append(metrics)
            if on_epoch is not None:
                on_epoch(epoch, dict(metrics))
            if monitor not in metrics:
                raise KeyError(f"early_stopping_metric {monitor!r} is not among the epoch metrics {sorted(metrics)}")
            value = metrics[monitor]
            improved = best_value is None or (value < best_value if minimize else value > best_value)
            if improved and not np.isnan(value):
                best_value, result.best_epoch, result.best_metrics = value, epoch, dict(metrics)
                if config.early_stopping_patience is not None:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                stale = 0
            else:
                stale += 1
                if config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
                    result.stopped_early = True
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        elif result.history:  # no early stopping: the model holds the last epoch
            result.best_epoch, result.best_metrics = len(result.history) - 1, dict(result.history[-1])
        result.seconds = time.perf_counter() - start
        model.eval()
        return result
    finally:
        torch.set_num_threads(previous_threads)
