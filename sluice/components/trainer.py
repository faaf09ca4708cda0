"""Trainer: trains a PyTorch model on transformed Examples, streaming batches from Parquet."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sluice.dsl.artifacts import Examples, Model, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import SluiceError
from sluice.io import split_files


class Trainer(Component):
    """Train a built-in model (``logistic_regression``, ``mlp``, ``wide_and_deep``) or your own.

    Example::

        trainer = Trainer(examples=transform.outputs.transformed_examples,
                          transform_graph=transform.outputs.transform_graph,
                          label="label", task="binary", model="wide_and_deep",
                          hparams={"hidden": [256, 128]}, epochs=3)

    ``model`` may also be a factory ``fn(features, task, num_classes) -> nn.Module``
    whose ``forward(dense, sparse)`` returns logits. Embedding sizes come from the
    transform's vocabularies; per-epoch loss and metrics go to the metadata store.
    """

    INPUTS = {"examples": InputSpec(Examples), "transform_graph": InputSpec(TransformGraph)}
    OUTPUTS = {"model": Model}

    def __init__(self, examples: Channel, transform_graph: Channel, *, label: str = "label",
                 task: str = "binary", model: str | Callable[..., Any] = "wide_and_deep",
                 hparams: Mapping[str, Any] | None = None, epochs: int = 3, batch_size: int = 4096,
                 learning_rate: float = 1e-3, optimizer: str = "adam", weight_decay: float = 0.0,
                 early_stopping_patience: int | None = None, shuffle_buffer: int = 100_000, seed: int = 0,
                 train_split: str = "train", eval_split: str = "eval", name: str | None = None,
                 cache: bool = True) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"Trainer task must be 'binary', 'multiclass' or 'regression', got {task!r}")
        params = {"label": label, "task": task, "model": model, "hparams": dict(hparams or {}), "epochs": epochs,
                  "batch_size": batch_size, "learning_rate": learning_rate, "optimizer": optimizer,
                  "weight_decay": weight_decay, "early_stopping_patience": early_stopping_patience,
                  "shuffle_buffer": shuffle_buffer, "seed": seed, "train_split": train_split,
                  "eval_split": eval_split}
        super().__init__(name=name, inputs={"examples": examples, "transform_graph": transform_graph},
                         params=params, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice.train import TrainConfig, build_model, fit, save_model
        from sluice.transform import TransformGraph

        p = ctx.params
        graph = TransformGraph.load(ctx.inputs["transform_graph"].path)
        specs = {s.name: s for s in graph.feature_specs}
        if p["label"] not in specs:
            raise SluiceError(f"Trainer: label {p['label']!r} is not a transform output; outputs are: "
                              f"{', '.join(specs)}")
        features = [s for s in graph.feature_specs if s.name != p["label"]]
        classes = graph.vocabulary(p["label"]) if p["task"] == "multiclass" else None
        num_classes = specs[p["label"]].cardinality if p["task"] == "multiclass" else None
        examples = ctx.inputs["examples"].path
        config = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], learning_rate=p["learning_rate"],
                             optimizer=p["optimizer"], weight_decay=p["weight_decay"], seed=p["seed"],
                             shuffle_buffer=p["shuffle_buffer"], early_stopping_patience=p["early_stopping_patience"])
        model = build_model(p["model"], features, p["task"], num_classes, seed=p["seed"], **p["hparams"])

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            shown = "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            ctx.report_progress(f"epoch {epoch + 1}/{p['epochs']}: {shown}")
            for key, value in metrics.items():
                ctx.log_metric(key, value, epoch)

        result = fit(model, split_files(examples, p["train_split"]), split_files(examples, p["eval_split"]),
                     features, p["label"], p["task"], config, on_epoch=on_epoch)
        out = ctx.outputs["model"]
        save_model(model, out.path, {"features": features, "task": p["task"], "num_classes": num_classes,
                                     "label": p["label"], "classes": classes})
        best = {k: round(float(v), 6) for k, v in result.best_metrics.items()}
        metric = next((k for k in ("eval_auc", "eval_accuracy", "eval_rmse") if k in best), "eval_loss")
        out.properties.update({"task": p["task"], "best_epoch": result.best_epoch, "metrics": best,
                               "seconds": round(result.seconds, 2),
                               "summary": f"{metric}={best.get(metric, float('nan')):.4f} "
                                          f"after {result.epochs_run} epoch(s)"})
