"""Hyperparameter search with optuna: trials train through :func:`sluice.train.fit`.

A search space maps a name to ``(kind, ...)``: ``("float", low, high)``, ``("log_float", low,
high)``, ``("int", low, high)``, ``("log_int", low, high)`` or ``("categorical", [choices])``
(choices may be lists, e.g. layer sizes). Names that are :class:`~sluice.train.TrainConfig` fields
(``learning_rate``, ``epochs``, ``batch_size``, ``weight_decay`` ...) set training; every other name
is a model hyperparameter (``hidden``, ``embedding_dim`` ...). Each trial reports its per-epoch
``metric`` to optuna, and with ``pruning`` a MedianPruner stops trials worse than the median of
the finished ones at the same epoch. The sampler (TPE) is seeded, so the same inputs give the
same trials. optuna and torch are imported when a search runs.

Example::

    from sluice.train.tuning import tune
    result = tune(train_files, eval_files, specs, "label", "binary", model="mlp",
                  search_space={"learning_rate": ("log_float", 1e-4, 1e-2),
                                "hidden": ("categorical", [[64], [128, 64]])},
                  trials=4, metric="eval_auc", direction="maximize")
    result.best_params  # {"learning_rate": 0.0031, "hidden": [128, 64]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SPACE_KINDS = ("float", "log_float", "int", "log_int", "categorical")


@dataclass
class TrialRecord:
    """One trial: its number, the values it tried, its final metric value (``None`` when it
    failed or was pruned before any epoch), its state (``complete``/``pruned``/``fail``) and
    the metric per epoch."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    history: list[float] = field(default_factory=list)
    error: str | None = None


@dataclass
class TuneResult:
    """What :func:`tune` found: the best trial's values and metric, and every trial."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    metric: str
    direction: str
    trials: list[TrialRecord]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``json.dumps(result.to_dict())``."""
        return asdict(self)


def validate_search_space(space: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Check a search space; a ValueError names the bad entry and what was expected.

    Example::

        validate_search_space({"epochs": ("int", 1, 3)})  # {"epochs": ("int", 1, 3)}
    """
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"search_space must be a non-empty dict of name -> (kind, ...), got {space!r}")
    out: dict[str, tuple[Any, ...]] = {}
    for name, spec in space.items():
        where = f"search_space[{name!r}]"
        if not isinstance(spec, (tuple, list)) or not spec:
            raise ValueError(f"{where} must be a tuple (kind, ...), got {spec!r}")
        kind = spec[0]
        if kind not in SPACE_KINDS:
            raise ValueError(f"{where}: unknown kind {kind!r}; expected one of {', '.join(SPACE_KINDS)}")
        if kind == "categorical":
            if len(spec) != 2 or not isinstance(spec[1], (list, tuple)) or not spec[1]:
                raise ValueError(f"{where}: expected ('categorical', [choice, ...]) with at least one choice, "
                                 f"got {spec!r}")
            out[name] = (kind, list(spec[1]))
            continue
        if len(spec) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec[1:]):
            raise ValueError(f"{where}: expected ({kind!r}, low, high) with numbers, got {spec!r}")
        low, high = spec[1], spec[2]
        if low > high:
            raise ValueError(f"{where}: low {low} is above high {high}")
        if kind.startswith("log") and low <= 0:
            raise ValueError(f"{where}: {kind} needs low > 0, got {low}")
        if kind in ("int", "log_int") and (int(low) != low or int(high) != high):
            raise ValueError(f"{where}: {kind} needs whole-number bounds, got {low}, {high}")
        out[name] = (kind, low, high)
    return out


def in_space(values: Mapping[str, Any], space: Mapping[str, Any]) -> bool:
    """Whether every value lies in its search-space entry (and every entry has a value)."""
    space = validate_search_space(space)
    if set(values) != set(space):
        return False
    for name, (kind, *rest) in space.items():
        v = values[name]
        if kind == "categorical":
            if v not in rest[0]:
                return False
        elif not rest[0] <= v <= rest[1] or (kind.endswith("int") and int(v) != v):
            return False
    return True


def read_hyperparameters(path: str) -> dict[str, Any]:
    """The tuned values in a HyperParameters artifact directory: ``{"learning_rate": 0.003, ...}``.

    Example::

        values = read_hyperparameters(tuner_output.path)
    """
    import os

    with open(os.path.join(path, "hyperparameters.json")) as f:
        return dict(json.load(f)["values"])


def split_hyperparameters(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(training settings, model hyperparameters)``: TrainConfig field names go to the first."""
    from sluice.train.loop import TrainConfig

    train_keys = {f.name for f in fields(TrainConfig)}
    return ({k: v for k, v in values.items() if k in train_keys},
            {k: v for k, v in values.items() if k not in train_keys})


def _suggest(trial: Any, space: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (kind, *rest) in space.items():
        if kind == "categorical":
            choices = rest[0]
            # optuna stores only None/bool/int/float/str: other choices (lists) go by their JSON text
            plain = all(c is None or isinstance(c, (bool, int, float, str)) for c in choices)
            if plain:
                values[name] = trial.suggest_categorical(name, choices)
            else:
                picked = trial.suggest_categorical(name, [json.dumps(c) for c in choices])
                values[name] = json.loads(picked)
        elif kind in ("float", "log_float"):
            values[name] = trial.suggest_float(name, float(rest[0]), float(rest[1]), log=kind == "log_float")
        else:
            values[name] = trial.suggest_int(name, int(rest[0]), int(rest[1]), log=kind == "log_int")
    return values


def tune(train_files: Sequence[str], eval_files: Sequence[str], features: Sequence[Any], label: str,
         task: str, *, model: str | Callable[..., Any], search_space: Mapping[str, Any], trials: int = 10,
         metric: str = "eval_auc", direction: str = "maximize", pruning: bool = True,
         pruner_startup_trials: int = 1, base: Mapping[str, Any] | None = None,
         hparams: Mapping[str, Any] | None = None, num_classes: int | None = None, seed: int = 0,
         on_trial: Callable[[TrialRecord], None] | None = None,
         on_epoch: Callable[[int, int, dict[str, float]], None] | None = None) -> TuneResult:
    """Search ``search_space`` with ``trials`` seeded TPE trials, each a :func:`fit` on the files.

    ``base``: TrainConfig settings every trial starts from (``{"epochs": 2, "batch_size": 1024}``);
    ``hparams``: model hyperparameters every trial starts from; the trial's values override both.
    ``on_trial(record)`` is called after each trial, ``on_epoch(trial, epoch, metrics)`` after
    each epoch. ``pruner_startup_trials``: finished trials before pruning may start.

    Example::

        result = tune(train, eval_, specs, "label", "binary", model="mlp",
                      search_space={"learning_rate": ("log_float", 1e-4, 1e-2)}, trials=3)
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    space = validate_search_space(search_space)
    try:
        import optuna
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("hyperparameter search needs optuna: pip install 'sluice-ml[tune]'") from None

    from sluice.train.loop import TrainConfig, fit
    from sluice.train.models import build_model

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials, n_warmup_steps=0)
              if pruning else optuna.pruners.NopPruner())
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=pruner)
    records: list[TrialRecord] = []
    base_settings, base_hparams = dict(base or {}), dict(hparams or {})
    unknown = set(split_hyperparameters(base_settings)[1])
    if unknown:
        raise ValueError(f"base: {', '.join(sorted(unknown))} are not TrainConfig settings")

    def objective(trial: Any) -> float:
        values = _suggest(trial, space)
        record = TrialRecord(trial.number, values, None, "running")
        records.append(record)
        settings, model_hparams = split_hyperparameters(values)
        config = TrainConfig(**{"seed": seed, **base_settings, **settings})
        net = build_model(model, features, task, num_classes, seed=seed, **{**base_hparams, **model_hparams})

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if metric not in metrics:
                raise ValueError(f"metric {metric!r} is not reported by training; it reports "
                                 f"{', '.join(sorted(metrics))}")
            value = float(metrics[metric])
            record.history.append(value)
            if on_epoch is not None:
                on_epoch(trial.number, epoch, metrics)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: {metric}={value:.4g}")

        fit(net, train_files, eval_files, features, label, task, config, on_epoch=report)
        return record.history[-1]

    def finished(study: Any, frozen: Any) -> None:
        record = next(r for r in records if r.number == frozen.number)
        record.state = frozen.state.name.lower()
        record.value = (frozen.value if frozen.value is not None
                        else (record.history[-1] if record.history else None))
        if on_trial is not None:
            on_trial(record)

    study.optimize(objective, n_trials=trials, callbacks=[finished], catch=())
    done = [r for r in records if r.state == "complete" and r.value is not None and not math.isnan(r.value)]
    if not done:
        raise RuntimeError(f"no trial completed ({len(records)} tried: "
                           f"{', '.join(r.state for r in records)})")
    best = study.best_trial
    return TuneResult(best_params=next(r.params for r in records if r.number == best.number),
                      best_value=float(best.value), best_trial=best.number, metric=metric,
                      direction=direction, trials=records)
