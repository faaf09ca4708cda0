"""Tuner: hyperparameter search (optuna) over Trainer-style training on transformed Examples."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sluice.components.trainer import model_inputs
from sluice.dsl.artifacts import Examples, HyperParameters, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import SluiceError
from sluice.io import split_files

STATE_CODES = {"complete": 1.0, "pruned": 0.0, "fail": -1.0}


class Tuner(Component):
    """Search hyperparameters with seeded optuna trials; output the best as ``best_hyperparameters``.

    Example::

        tuner = Tuner(examples=transform.outputs.transformed_examples,
                      transform_graph=transform.outputs.transform_graph, model="mlp",
                      search_space={"learning_rate": ("log_float", 1e-4, 1e-2),
                                    "hidden": ("categorical", [[64], [128, 64]]),
                                    "epochs": ("int", 1, 3)},
                      trials=8, metric="eval_auc", direction="maximize", pruning=True)
        trainer = Trainer(..., hyperparameters=tuner.outputs.best_hyperparameters)

    Search-space kinds and how names map to training settings vs. model hyperparameters:
    :mod:`sluice.train.tuning`. ``epochs``, ``batch_size``, ``learning_rate`` and ``hparams``
    are every trial's defaults. Each trial is recorded as metrics of this step at
    ``step=trial number``: ``trial_value``, ``trial_state`` (1 complete, 0 pruned, -1 failed),
    ``trial_epochs`` and ``param.<name>`` for numeric values; the whole record (categorical
    values too) goes to ``trials.json`` in the output artifact.
    """

    VERSION = "1"

    INPUTS = {"examples": InputSpec(Examples), "transform_graph": InputSpec(TransformGraph)}
    OUTPUTS = {"best_hyperparameters": HyperParameters}

    def __init__(self, examples: Channel, transform_graph: Channel, *, search_space: Mapping[str, Any],
                 label: str = "label", task: str = "binary", model: str | Callable[..., Any] = "wide_and_deep",
                 hparams: Mapping[str, Any] | None = None, trials: int = 10, metric: str = "eval_auc",
                 direction: str = "maximize", pruning: bool = True, pruner_startup_trials: int = 1,
                 epochs: int = 2, batch_size: int = 4096, learning_rate: float = 1e-3, seed: int = 0,
                 train_split: str = "train", eval_split: str = "eval", name: str | None = None,
                 cache: bool = True) -> None:
        from sluice.train.tuning import validate_search_space

        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"Tuner task must be 'binary', 'multiclass' or 'regression', got {task!r}")
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"Tuner direction must be 'maximize' or 'minimize', got {direction!r}")
        if not isinstance(trials, int) or trials < 1:
            raise ValueError(f"Tuner trials must be a positive integer, got {trials!r}")
        space = {k: list(v) for k, v in validate_search_space(search_space).items()}
        params = {"search_space": space, "label": label, "task": task, "model": model,
                  "hparams": dict(hparams or {}), "trials": trials, "metric": metric, "direction": direction,
                  "pruning": pruning, "pruner_startup_trials": pruner_startup_trials, "epochs": epochs,
                  "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                  "train_split": train_split, "eval_split": eval_split}
        super().__init__(name=name, inputs={"examples": examples, "transform_graph": transform_graph},
                         params=params, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice.train.tuning import TrialRecord, tune
        from sluice.transform import TransformGraph

        p = ctx.params
        graph = TransformGraph.load(ctx.inputs["transform_graph"].path)
        features, num_classes = model_inputs(graph, p["label"], p["task"], "Tuner")
        examples = ctx.inputs["examples"].path

        def on_trial(r: TrialRecord) -> None:
            values = {"trial_state": STATE_CODES.get(r.state, -1.0), "trial_epochs": float(len(r.history))}
            if r.value is not None:
                values["trial_value"] = r.value
            values.update({f"param.{k}": float(v) for k, v in r.params.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for key, value in values.items():
                ctx.log_metric(key, value, r.number)
            shown = f"{r.value:.4g}" if r.value is not None else "-"
            ctx.report_progress(f"trial {r.number + 1}/{p['trials']} {r.state}: {p['metric']}={shown} "
                                f"{json.dumps(r.params)}")

        try:
            result = tune(split_files(examples, p["train_split"]), split_files(examples, p["eval_split"]),
                          features, p["label"], p["task"], model=p["model"], search_space=p["search_space"],
                          trials=p["trials"], metric=p["metric"], direction=p["direction"], pruning=p["pruning"],
                          pruner_startup_trials=p["pruner_startup_trials"],
                          base={"epochs": p["epochs"], "batch_size": p["batch_size"],
                                "learning_rate": p["learning_rate"]},
                          hparams=p["hparams"], num_classes=num_classes, seed=p["seed"], on_trial=on_trial)
        except (ValueError, RuntimeError) as exc:
            raise SluiceError(f"Tuner: {exc}") from exc
        out = ctx.outputs["best_hyperparameters"]
        doc = {"values": result.best_params, "metric": result.metric, "direction": result.direction,
               "best_value": result.best_value, "best_trial": result.best_trial, "model": _name(p["model"])}
        with open(out.file("hyperparameters.json"), "w") as f:
            json.dump(doc, f, indent=2)
        with open(out.file("trials.json"), "w") as f:
            json.dump([t.__dict__ for t in result.trials], f, indent=2)
        pruned = sum(t.state == "pruned" for t in result.trials)
        out.properties.update({"values": result.best_params, "metric": result.metric,
                               "best_value": round(result.best_value, 6), "best_trial": result.best_trial,
                               "trials": len(result.trials), "pruned": pruned,
                               "summary": f"best {result.metric}={result.best_value:.4f} "
                                          f"(trial {result.best_trial}, {len(result.trials)} trials, "
                                          f"{pruned} pruned)"})


def _name(model: Any) -> str:
    return model if isinstance(model, str) else getattr(model, "__qualname__", repr(model))

