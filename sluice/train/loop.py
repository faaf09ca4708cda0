"""The training loop: epochs over Parquet shards, per-epoch eval metrics, early stopping,
checkpoints, and the same code in one process or in N data-parallel worker processes.

:func:`fit` runs :func:`run_training` in the caller's process when ``workers == 1``, or launches
``workers`` processes (:mod:`sluice.train.distributed`) that each run it on their own loader
shard, gradients averaged over them (``DistributedDataParallel``, or
:class:`~sluice.train.grad_sync.GradSync` for sparse embeddings on CPU); rank 0 evaluates, reports and saves.

Example::

    model = build_model("mlp", specs, "binary", seed=0)
    result = fit(model, train_files, eval_files, specs, "clicked", "binary",
                 TrainConfig(epochs=5, early_stopping_patience=2),
                 on_epoch=lambda e, m: print(e, m), workers=2)
    result.best_metrics   # {'train_loss': 0.41, 'eval_loss': 0.43, 'eval_auc': 0.87, ...}
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sluice.features import FeatureSpec
from sluice.train.distributed import embedding_sync, wrap_ddp
from sluice.train.checkpoint import CheckpointSaver, TrainState, job_fingerprint, load_checkpoint
from sluice.train.cpu_budget import default_threads, loader_prefetch
from sluice.train.loader import ParquetBatchLoader, label_dtype_for
from sluice.train.metrics import task_metrics
from sluice.train.optim import LearningRateSchedule, SplitOptimizer, build_optimizer
from sluice.train.models import TASKS

__all__ = ["Job", "TrainConfig", "TrainResult", "checkpoint_scratch", "default_threads", "epoch_relay", "evaluate",
           "fit", "loss_function", "make_job", "run_training", "train_epoch"]

OnEpoch = Callable[[int, dict[str, float]], None]
Emit = Callable[[str, Any], None]
log = logging.getLogger("sluice.train")


@dataclass
class TrainConfig:
    """How to train. ``threads`` sets torch's intra-op threads; ``None`` means every core except
    those the loader's ``num_workers`` reader threads use (at least 1): on a 2-core machine two
    torch threads beside a busy reader thread ran up to 10x slower than one (spinning OpenMP
    workers starve the reader). ``prefetch``: batches a loader thread keeps ready; ``None``
    leaves it to :func:`~sluice.train.cpu_budget.loader_prefetch` (none when the workers' torch
    threads take every core). ``early_stopping_patience=None`` trains all
    epochs and keeps the last weights, an integer stops after that many epochs without
    improvement of ``early_stopping_metric`` and restores the best epoch's weights. The metric's
    direction is inferred: names with ``loss``/``rmse`` are minimized, others (auc, accuracy)
    maximized. Without eval files the monitored metric falls back to ``train_loss``.

    Distributed and fault tolerance: ``workers`` processes train data-parallel (one torch thread
    each unless ``threads`` says otherwise). With a ``checkpoint_dir`` a checkpoint is written
    atomically at every epoch end and, mid-epoch, every ``checkpoint_every_steps`` optimizer
    steps and/or ``checkpoint_every_seconds``; ``resume`` continues from a checkpoint of the same
    job found there. A worker process that dies is noticed and the whole group restarts from the
    last checkpoint, at most ``max_restarts`` times. With ``workers > 1`` and no directory, a
    temporary one is used for the run.

    Optimization: ``grad_accumulation`` micro-batches per optimizer step (the loss is averaged,
    so k batches of B give the gradient of one batch of kB); ``lr_schedule`` is ``"constant"``,
    ``"cosine"`` (to 0 over the run) or ``"step"`` (x ``lr_gamma`` every ``lr_step_epochs``
    epochs), after ``warmup_steps`` of linear warm-up; ``precision="bf16"`` autocasts the forward
    pass to bfloat16 on CUDA (on CPU it is ignored with a warning). ``ddp_sparse_embeddings``:
    whether embeddings keep sparse gradients under DDP, the workers exchanging only the rows a
    step touched (default: yes over gloo; NCCL is always dense), or all-reduce them dense."""

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
    prefetch: int | None = None  # batches kept ready by a loader thread; None: 4 if a core is spare, else 0
    eval_batch_size: int | None = None  # default: batch_size
    device: str = "cpu"
    workers: int = 1  # data-parallel processes
    checkpoint_dir: str | None = None
    checkpoint_every_steps: int | None = None
    checkpoint_every_seconds: float | None = None
    resume: bool = True
    max_restarts: int = 3
    grad_accumulation: int = 1
    lr_schedule: str = "constant"  # "constant" | "cosine" | "step"
    warmup_steps: int = 0
    lr_step_epochs: int = 1
    lr_gamma: float = 0.5
    precision: str = "fp32"  # "fp32" | "bf16" (CUDA only)
    ddp_sparse_embeddings: bool | None = None  # None: sparse over gloo, dense over NCCL

    def semantic(self) -> dict[str, Any]:
        """The fields that change what is trained (not where or how often it is checkpointed)."""
        skip = {"checkpoint_dir", "checkpoint_every_steps", "checkpoint_every_seconds", "resume",
                "max_restarts", "threads", "num_workers", "prefetch", "eval_batch_size"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class TrainResult:
    """What :func:`fit` did: per-epoch metrics (``history[i]`` is epoch ``i``), the epoch whose
    weights the model holds, and whether early stopping ended training."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    seconds: float = 0.0
    restarts: int = 0  # times a failed worker group was restarted from a checkpoint
    resumed_from: tuple[int, int] | None = None  # (epoch, step) of the checkpoint resumed, if any

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def loss_function(task: str) -> nn.Module:
    """BCE-with-logits for binary, cross-entropy for multiclass, MSE for regression (mean over rows)."""
    if task == "binary":
        return nn.BCEWithLogitsLoss()
    if task == "multiclass":
        return nn.CrossEntropyLoss()
    if task == "regression":
        return nn.MSELoss()
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


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
    """One pass over ``loader`` in this process; returns (mean training loss, rows seen).

    A building block for custom loops; :func:`fit` adds accumulation, schedules, checkpoints
    and data parallelism on top of the same step (:func:`_step`).
    """
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on device: no sync per step
    rows = 0
    for batch in loader:
        optimizer.zero_grad(set_to_none=True)
        total += _step(model, batch, loss_fn, task, device, 1.0, False) * len(batch)
        _clip(model, grad_clip)
        optimizer.step()
        rows += len(batch)
    return (total.item() / rows if rows else float("nan")), rows


def _step(model: nn.Module, batch: Any, loss_fn: nn.Module, task: str, device: torch.device | str,
          scale: float, bf16: bool) -> torch.Tensor:
    """Forward and backward of one (micro-)batch; the loss is multiplied by ``scale`` before
    backward (1/k under accumulation). Returns the unscaled loss, detached."""
    dense, sparse, y = (t.to(device, non_blocking=True) for t in (batch.dense, batch.sparse, batch.label))
    if task == "binary" and bool(((y < 0) | (y > 1)).any()):
        raise ValueError("binary labels must be in [0, 1]; found values outside (is the task right?)")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        logits = model(dense, sparse)
    logits = logits.float()
    _check_logits(logits, len(batch), task)
    loss = loss_fn(logits, y)
    (loss * scale if scale != 1.0 else loss).backward()
    return loss.detach()


def _clip(model: nn.Module, max_norm: float | None) -> torch.Tensor | None:
    """Clip the dense gradients' global L2 norm to ``max_norm`` (embedding rows are updated
    sparsely and are left alone); returns the norm before clipping."""
    if not max_norm:
        return None
    return nn.utils.clip_grad_norm_([p for p in model.parameters()
                                     if p.grad is not None and not p.grad.is_sparse], max_norm)

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


@dataclass
class Job:
    """Everything a training process needs besides the model (picklable: sent to workers)."""

    train_files: list[str]
    eval_files: list[str] | None
    features: list[FeatureSpec]
    label: str
    task: str
    config: TrainConfig
    fingerprint: str = ""


def fit(
    model: nn.Module,
    train_files: Sequence[str],
    eval_files: Sequence[str] | None,
    features: Sequence[FeatureSpec],
    label: str,
    task: str,
    config: TrainConfig | None = None,
    on_epoch: OnEpoch | None = None,
    *,
    workers: int | None = None,
) -> TrainResult:
    """Train ``model`` in place on Parquet shards; evaluate on ``eval_files`` after every epoch.

    Per epoch (0-based) ``on_epoch(epoch, metrics)`` gets ``train_loss``, ``eval_loss``,
    ``eval_<metric>`` (auc / accuracy / rmse), ``samples_per_sec`` (training rows per second,
    all workers together), ``data_wait_fraction`` (share of training time spent waiting for the
    loader), ``lr`` and ``epoch_seconds``. It is called in the caller's process, once per epoch
    even across restarts. ``workers`` (default ``config.workers``) > 1 trains in that many
    processes with DistributedDataParallel (spawned: a script needs the
    ``if __name__ == "__main__":`` guard, and a custom model's class must be importable). The
    model is returned to eval mode at the end.

    Example::

        result = fit(model, ["train/"], ["eval/"], specs, "label", "binary",
                     TrainConfig(epochs=3, checkpoint_dir="ckpt", checkpoint_every_steps=100),
                     workers=2)
    """
    config = config or TrainConfig()
    if workers is not None and workers != config.workers:
        config = TrainConfig(**{**asdict(config), "workers": workers})
    job = make_job(model, train_files, eval_files, features, label, task, config)
    emit = epoch_relay(on_epoch)
    if config.workers == 1:
        return run_training(model, job, 0, 1, emit)
    from sluice.train.distributed import launch

    with checkpoint_scratch(job):
        return launch(model, job, emit)


def make_job(model: nn.Module, train_files: Sequence[str], eval_files: Sequence[str] | None,
             features: Sequence[FeatureSpec], label: str, task: str, config: TrainConfig) -> Job:
    """Check ``config`` and ``task`` and build the picklable :class:`Job` for the training
    processes, with the fingerprint that ties checkpoints to this job (data, features, model
    class and shapes, semantic config). Shared by :func:`fit` and the Spark launcher."""
    if config.workers < 1:
        raise ValueError(f"workers must be >= 1, got {config.workers}")
    if config.grad_accumulation < 1:
        raise ValueError(f"grad_accumulation must be >= 1, got {config.grad_accumulation}")
    if config.lr_schedule not in ("constant", "cosine", "step"):
        raise ValueError(f"lr_schedule must be 'constant', 'cosine' or 'step', got {config.lr_schedule!r}")
    if config.precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {config.precision!r}")
    loss_function(task)  # validates the task before any process starts
    job = Job(list(train_files), list(eval_files) if eval_files else None, list(features), label, task, config)
    job.fingerprint = job_fingerprint({
        "train": job.train_files, "eval": job.eval_files, "features": [f.to_dict() for f in job.features],
        "label": label, "task": task, "model": type(model).__qualname__, "config": config.semantic(),
        "params": [list(p.shape) for p in model.parameters()],
    })
    return job


def epoch_relay(on_epoch: OnEpoch | None) -> Emit:
    """An ``emit`` that calls ``on_epoch(epoch, metrics)`` once per epoch: a restart resumes
    from a checkpoint and reports its earlier epochs again, which are skipped here."""
    reported: set[int] = set()

    def emit(kind: str, payload: Any) -> None:
        if kind == "epoch" and on_epoch is not None and payload[0] not in reported:
            reported.add(payload[0])
            on_epoch(payload[0], dict(payload[1]))

    return emit


@contextlib.contextmanager
def checkpoint_scratch(job: Job) -> Iterator[None]:
    """Restarts resume from a checkpoint: without a ``checkpoint_dir`` the job gets a temporary
    one for the duration of the block."""
    if job.config.checkpoint_dir is not None:
        yield
        return
    scratch = tempfile.mkdtemp(prefix="sluice-train-")
    job.config = TrainConfig(**{**asdict(job.config), "checkpoint_dir": scratch})
    try:
        yield
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_training(model: nn.Module, job: Job, rank: int, world: int, emit: Emit) -> TrainResult:
    """The training loop of one process (rank ``rank`` of ``world``): the same code for 1 and N.

    With ``world > 1`` the process group must be initialized; gradients are averaged here
    (:func:`~sluice.train.distributed.wrap_ddp`, :class:`~sluice.train.grad_sync.GradSync`). Rank 0 evaluates, decides early stopping, writes checkpoints
    and calls ``emit("epoch", (epoch, metrics))``; its result is the meaningful one.
    """
    import torch.distributed as dist

    config = job.config
    distributed = world > 1
    previous_threads = torch.get_num_threads()
    threads = config.threads or (1 if distributed else default_threads(config.num_workers))
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed + rank)  # dropout and any other randomness inside the model
    device = torch.device(config.device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    bf16 = config.precision == "bf16" and device.type == "cuda"
    if config.precision == "bf16" and not bf16 and rank == 0:
        log.warning("precision='bf16' needs CUDA; training in float32 on %s", device)
    grad_sync = embedding_sync(model, config, device, world)
    model.to(device)
    try:
        loss_fn = loss_function(job.task)
        train_loader = ParquetBatchLoader(
            job.train_files, job.features, job.label,
            batch_size=config.batch_size, shuffle=True, shuffle_buffer=config.shuffle_buffer, seed=config.seed,
            label_dtype=label_dtype_for(job.task), num_workers=config.num_workers, rank=rank, world_size=world,
            prefetch=loader_prefetch(config, threads, world),
        )
        eval_loader = None
        if job.eval_files and rank == 0:
            eval_loader = ParquetBatchLoader(
                job.eval_files, job.features, job.label,
                batch_size=config.eval_batch_size or config.batch_size, shuffle=False,
                label_dtype=label_dtype_for(job.task), num_workers=config.num_workers,
            )
        monitor = config.early_stopping_metric if job.eval_files else "train_loss"
        minimize = "loss" in monitor or "rmse" in monitor
        net = wrap_ddp(model, device, grad_sync) if distributed else model
        optimizer = build_optimizer(model, config)
        accum = config.grad_accumulation
        schedule = LearningRateSchedule(config, -(-_epoch_steps(train_loader, 0, world) // accum))
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in optimizer.optimizers]
        result = TrainResult()
        state = TrainState()
        ckpt = load_checkpoint(config.checkpoint_dir, job.fingerprint) if config.resume else None
        if ckpt is not None and ckpt.get("world_size") != world:
            log.warning("ignoring checkpoint written by %s workers (now %s)", ckpt.get("world_size"), world)
            ckpt = None
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            for s, st in zip(schedulers, ckpt["schedulers"]):
                s.load_state_dict(st)
            torch.set_rng_state(ckpt["rng"][rank])
            state = ckpt["state"]
            result.resumed_from = (state.epoch, state.step)
            if rank == 0:
                log.info("resuming from checkpoint at epoch %d step %d", state.epoch, state.step)
                for e, metrics in enumerate(state.history):
                    emit("epoch", (e, metrics))
        saver = CheckpointSaver(config, job.fingerprint, rank, world, model, optimizer, schedulers)
        start = time.perf_counter()
        while state.epoch < config.epochs and not state.stopped:
            epoch = state.epoch
            t0 = time.perf_counter()
            train_loader.set_epoch(epoch)
            steps = _epoch_steps(train_loader, epoch, world)
            if distributed and steps == 0:
                raise ValueError(f"a worker has no training rows in epoch {epoch}: "
                                 f"{train_loader.rows_per_rank(epoch)} rows per rank for {world} workers")
            net.train()
            wait, busy_start = 0.0, None
            resumed_rows = rows = state.rows
            loss_sum = torch.tensor(state.loss_sum, dtype=torch.float64, device=device)
            batches = iter(train_loader)
            i = 0
            while i < steps:
                w0 = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    break
                if i < state.step:  # resuming: the loader replays the epoch's order; skip what was trained
                    i += 1
                    continue
                if busy_start is None:
                    busy_start = w0
                wait += time.perf_counter() - w0
                last_micro = (i + 1) % accum == 0 or i + 1 == steps
                sync = net.no_sync() if not last_micro and net is not model else contextlib.nullcontext()
                with sync:
                    loss_sum += _step(net, batch, loss_fn, job.task, device, 1.0 / accum, bf16) * len(batch)
                rows += len(batch)
                i += 1
                if last_micro:
                    if grad_sync:
                        grad_sync()
                    _clip(model, config.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    for s in schedulers:
                        s.step()
                    state.global_step += 1
                    if saver.due(state.global_step):
                        state.step, state.rows, state.loss_sum = i, rows, float(loss_sum)
                        saver.save(state)
            batches.close()  # stops the loader's prefetch thread when the epoch was cut short
            train_seconds = time.perf_counter() - (busy_start or t0)
            totals = torch.tensor([float(loss_sum), float(rows), float(rows - resumed_rows), wait, train_seconds],
                                  dtype=torch.float64)
            if distributed:
                dist.all_reduce(totals)
            loss_total, rows_total, trained_total, wait_total, seconds_total = totals.tolist()
            mean_seconds = seconds_total / world
            metrics = {"train_loss": loss_total / rows_total if rows_total else float("nan"),
                       "samples_per_sec": trained_total / mean_seconds if mean_seconds else 0.0,
                       "data_wait_fraction": wait_total / seconds_total if seconds_total else 0.0,
                       "lr": optimizer.optimizers[0].param_groups[0]["lr"]}
            stop = torch.zeros(1)
            if rank == 0:
                if eval_loader is not None:
                    metrics.update({f"eval_{k}": v for k, v in evaluate(model, eval_loader, job.task, device).items()})
                metrics["epoch_seconds"] = time.perf_counter() - t0
                state.history.append(metrics)
                emit("epoch", (epoch, metrics))
                if monitor not in metrics:
                    raise KeyError(f"early_stopping_metric {monitor!r} is not among the epoch metrics {sorted(metrics)}")
                value = metrics[monitor]
                improved = state.best_value is None or (value < state.best_value if minimize else value > state.best_value)
                if improved and not np.isnan(value):
                    state.best_value, state.best_epoch, state.best_metrics = value, epoch, dict(metrics)
                    if config.early_stopping_patience is not None:
                        state.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    state.stale = 0
                else:
                    state.stale += 1
                    if config.early_stopping_patience is not None and state.stale >= config.early_stopping_patience:
                        stop[0] = 1
            if distributed:
                dist.broadcast(stop, 0)
            state.stopped = bool(stop[0])
            state.epoch, state.step, state.rows, state.loss_sum = epoch + 1, 0, 0, 0.0
            if config.checkpoint_dir:
                saver.save(state)
        if rank == 0:
            result.history = list(state.history)
            result.stopped_early = state.stopped
            if state.best_state is not None:
                model.load_state_dict(state.best_state)
            if config.early_stopping_patience is not None and state.best_epoch >= 0:
                result.best_epoch, result.best_metrics = state.best_epoch, dict(state.best_metrics)
            elif result.history:  # no early stopping: the model holds the last epoch
                result.best_epoch, result.best_metrics = len(result.history) - 1, dict(result.history[-1])
        result.seconds = time.perf_counter() - start
        model.eval()
        return result
    finally:
        torch.set_num_threads(previous_threads)


def _epoch_steps(loader: ParquetBatchLoader, epoch: int, world: int) -> int:
    """Batches every rank trains in ``epoch``: the smallest rank's count, so that DDP's
    collective calls match (ranks with more rows skip their last few batches that epoch)."""
    counts = [-(-n // loader.batch_size) for n in loader.rows_per_rank(epoch)]
    return min(counts) if world > 1 else counts[0]
