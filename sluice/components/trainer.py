"""Trainer: trains a PyTorch model on transformed Examples, streaming batches from Parquet."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from sluice.dsl.artifacts import Examples, HyperParameters, Model, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import SluiceError
from sluice.io import split_files


class Trainer(Component):
    """Train a built-in model (``logistic_regression``, ``mlp``, ``wide_and_deep``, ``deepfm``,
    ``dcn_v2``) or your own.

    Example::

        trainer = Trainer(examples=transform.outputs.transformed_examples,
                          transform_graph=transform.outputs.transform_graph,
                          label="label", task="binary", model="wide_and_deep",
                          hparams={"hidden": [256, 128]}, epochs=3)

    ``model`` may also be a factory ``fn(features, task, num_classes) -> nn.Module``
    whose ``forward(dense, sparse)`` returns logits. Embedding sizes come from the
    transform's vocabularies; per-epoch loss and metrics (with ``samples_per_sec`` and
    ``data_wait_fraction``) go to the metadata store.

    ``workers=N`` trains in N local processes with DistributedDataParallel (``batch_size`` is
    per worker); on the Spark engine the N processes run as one barrier job on the executors
    (:func:`sluice.train.spark_distributor.fit_on_spark`, PySpark's ``TorchDistributor``) with
    the same training code, rank 0 relaying each epoch's metrics to the step (``workers=1``
    trains in the step's process on either engine). Checkpoints go to ``.checkpoints/`` beside
    the artifact store's staging area, keyed by the step's parameters and inputs, at every epoch
    end and every ``checkpoint_every_steps`` steps / ``checkpoint_every_seconds``: a re-run
    after a crash resumes from them, and a killed worker restarts the group (at most
    ``max_restarts`` times; the count is logged as the ``restarts`` metric). They are deleted once the model is saved.
    ``grad_clip``, ``grad_accumulation``, ``lr_schedule`` (constant/cosine/step), ``warmup_steps``
    and ``precision`` (``bf16`` on CUDA) are :class:`sluice.train.TrainConfig`'s.

    ``hyperparameters=tuner.outputs.best_hyperparameters`` (optional) takes a
    :class:`~sluice.components.tuner.Tuner`'s best values: TrainConfig names (``learning_rate``,
    ``epochs`` ...) override the settings above, other names override/extend ``hparams``. The
    values used are logged as ``hp.<name>`` metrics (numbers) and the model's ``hyperparameters``
    property.
    """

    # 2: workers (DDP), checkpoints/restarts, throughput metrics; 3: hyperparameters input;
    # 4: each local DDP worker trains its own copy of the weights (they shared one before);
    # 5: under DDP embeddings keep sparse gradients and SparseAdam (touched rows exchanged)
    VERSION = "5"

    INPUTS = {"examples": InputSpec(Examples), "transform_graph": InputSpec(TransformGraph),
              "hyperparameters": InputSpec(HyperParameters, optional=True)}
    OUTPUTS = {"model": Model}

    def __init__(self, examples: Channel, transform_graph: Channel, *, label: str = "label",
                 task: str = "binary", model: str | Callable[..., Any] = "wide_and_deep",
                 hparams: Mapping[str, Any] | None = None, epochs: int = 3, batch_size: int = 4096,
                 learning_rate: float = 1e-3, optimizer: str = "adam", weight_decay: float = 0.0,
                 early_stopping_patience: int | None = None, shuffle_buffer: int = 100_000, seed: int = 0,
                 train_split: str = "train", eval_split: str = "eval", workers: int = 1,
                 checkpoint_every_steps: int | None = None, checkpoint_every_seconds: float | None = 300.0,
                 max_restarts: int = 3, grad_clip: float | None = None, grad_accumulation: int = 1,
                 lr_schedule: str = "constant", warmup_steps: int = 0, precision: str = "fp32",
                 hyperparameters: Channel | None = None, name: str | None = None, cache: bool = True) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"Trainer task must be 'binary', 'multiclass' or 'regression', got {task!r}")
        params = {"label": label, "task": task, "model": model, "hparams": dict(hparams or {}), "epochs": epochs,
                  "batch_size": batch_size, "learning_rate": learning_rate, "optimizer": optimizer,
                  "weight_decay": weight_decay, "early_stopping_patience": early_stopping_patience,
                  "shuffle_buffer": shuffle_buffer, "seed": seed, "train_split": train_split,
                  "eval_split": eval_split, "workers": workers, "checkpoint_every_steps": checkpoint_every_steps,
                  "checkpoint_every_seconds": checkpoint_every_seconds, "max_restarts": max_restarts,
                  "grad_clip": grad_clip, "grad_accumulation": grad_accumulation, "lr_schedule": lr_schedule,
                  "warmup_steps": warmup_steps, "precision": precision}
        super().__init__(name=name, inputs={"examples": examples, "transform_graph": transform_graph,
                                            "hyperparameters": hyperparameters},
                         params=params, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice.train import TrainConfig, build_model, fit, save_model
        from sluice.transform import TransformGraph

        p = ctx.params
        tuned = ctx.inputs.get("hyperparameters")
        if tuned is not None:
            p = _apply_tuned(p, tuned.path)
        graph = TransformGraph.load(ctx.inputs["transform_graph"].path)
        features, num_classes = model_inputs(graph, p["label"], p["task"], "Trainer")
        classes = graph.vocabulary(p["label"]) if p["task"] == "multiclass" else None
        examples = ctx.inputs["examples"].path
        config = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], learning_rate=p["learning_rate"],
                             optimizer=p["optimizer"], weight_decay=p["weight_decay"], seed=p["seed"],
                             shuffle_buffer=p["shuffle_buffer"], early_stopping_patience=p["early_stopping_patience"],
                             workers=p.get("workers", 1), checkpoint_dir=_checkpoint_dir(ctx),
                             checkpoint_every_steps=p.get("checkpoint_every_steps"),
                             checkpoint_every_seconds=p.get("checkpoint_every_seconds"),
                             max_restarts=p.get("max_restarts", 3), grad_clip=p.get("grad_clip"),
                             grad_accumulation=p.get("grad_accumulation", 1),
                             lr_schedule=p.get("lr_schedule", "constant"), warmup_steps=p.get("warmup_steps", 0),
                             precision=p.get("precision", "fp32"))
        model = build_model(p["model"], features, p["task"], num_classes, seed=p["seed"], **p["hparams"])

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            shown = "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            ctx.report_progress(f"epoch {epoch + 1}/{p['epochs']}: {shown}")
            for key, value in metrics.items():
                ctx.log_metric(key, value, epoch)

        files = split_files(examples, p["train_split"]), split_files(examples, p["eval_split"])
        if config.workers > 1 and getattr(ctx.engine, "name", "") == "spark":  # workers are Spark tasks
            from sluice.train.spark_distributor import fit_on_spark

            result = fit_on_spark(ctx.engine.spark, model, *files, features, p["label"], p["task"], config,
                                  on_epoch=on_epoch)
        else:
            result = fit(model, *files, features, p["label"], p["task"], config, on_epoch=on_epoch)
        ctx.log_metric("restarts", result.restarts, max(0, result.epochs_run - 1))
        if result.restarts:
            ctx.log.warning("training restarted %d time(s) after a worker died", result.restarts)
        out = ctx.outputs["model"]
        if tuned is not None:
            used = {k: p[k] if k in p else p["hparams"][k] for k in _tuned_values(tuned.path)}
            out.properties["hyperparameters"] = used
            for key, value in used.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    ctx.log_metric(f"hp.{key}", value, 0)
        save_model(model, out.path, {"features": features, "task": p["task"], "num_classes": num_classes,
                                     "label": p["label"], "classes": classes})
        best = {k: round(float(v), 6) for k, v in result.best_metrics.items()}
        metric = next((k for k in ("eval_auc", "eval_accuracy", "eval_rmse") if k in best), "eval_loss")
        out.properties.update({"task": p["task"], "best_epoch": result.best_epoch, "metrics": best,
                               "seconds": round(result.seconds, 2), "workers": config.workers,
                               "restarts": result.restarts,
                               "summary": f"{metric}={best.get(metric, float('nan')):.4f} "
                                          f"after {result.epochs_run} epoch(s)"})
        shutil.rmtree(config.checkpoint_dir, ignore_errors=True)  # the model is saved: no longer needed


def model_inputs(graph: Any, label: str, task: str, step: str) -> tuple[list[Any], int | None]:
    """The model's input features of a TransformGraph (every output but ``label``) and, for a
    multiclass task, the label's class count; a label the transform does not output is an
    error naming ``step`` and the outputs there are. Shared by the Trainer and the Tuner."""
    specs = {s.name: s for s in graph.feature_specs}
    if label not in specs:
        raise SluiceError(f"{step}: label {label!r} is not a transform output; outputs are: {', '.join(specs)}")
    features = [s for s in graph.feature_specs if s.name != label]
    return features, (specs[label].cardinality if task == "multiclass" else None)


def _tuned_values(path: str) -> dict[str, Any]:
    from sluice.train.tuning import read_hyperparameters

    return read_hyperparameters(path)


def _apply_tuned(params: dict[str, Any], path: str) -> dict[str, Any]:
    """The step's parameters with a Tuner's values applied: Trainer settings replaced, the
    rest merged into ``hparams``."""
    from sluice.train.tuning import split_hyperparameters

    settings, hparams = split_hyperparameters(_tuned_values(path))
    unknown = [k for k in settings if k not in params]
    if unknown:
        raise SluiceError(f"Trainer: tuned setting(s) {', '.join(unknown)} are not Trainer parameters; "
                          f"tune one of: epochs, batch_size, learning_rate, optimizer, weight_decay, ... "
                          f"or a model hyperparameter")
    return {**params, **settings, "hparams": {**params["hparams"], **hparams}}


def _checkpoint_dir(ctx: StepContext) -> str:
    """Where this step's checkpoints live: keyed by pipeline, step, parameters and input
    fingerprints, so a re-run of the same step finds them and any other step does not."""
    key = hashlib.sha256(json.dumps({
        "params": ctx.params, "inputs": {k: (a.fingerprint if a is not None else None) for k, a in ctx.inputs.items()},
    }, sort_keys=True, default=lambda o: getattr(o, "__qualname__", None) or repr(o)).encode()).hexdigest()[:24]
    staging = os.path.dirname(ctx.outputs["model"].path)
    root = os.path.dirname(staging) if os.path.basename(staging) == ".staging" else os.path.join(
        tempfile.gettempdir(), "sluice")
    return os.path.join(root, ".checkpoints", ctx.pipeline, ctx.step, key)
