"""The evaluation result: metrics overall, per slice, and a calibration table.

Metric names by task:

- ``binary``: ``count``, ``positive_rate``, ``mean_prediction``, ``auc``,
  ``log_loss``, ``accuracy`` (at threshold 0.5), ``calibration`` (mean
  prediction / mean label);
- ``multiclass``: ``count``, ``accuracy``, and ``log_loss`` when ``prob_<k>``
  columns are given;
- ``regression``: ``count``, ``rmse``, ``mae``, ``mean_label``, ``mean_prediction``.

A metric that is undefined (AUC with one class only) is ``None``.

JSON layout (``evaluation.json``)::

    {"format": "sluice.evaluation/1", "task": "binary", "label": "label", "prediction": "prediction",
     "model": null,
     "metrics": {"count": 1000, "auc": 0.78, "log_loss": 0.46, ...},
     "slices": [{"feature": "country", "value": "FR", "metrics": {"count": 300, "auc": 0.8, ...}}, ...],
     "slices_left_out": {"country": 12},
     "calibration": [{"lower": 0.0, "upper": 0.1, "count": 120, "mean_prediction": 0.05,
                      "mean_label": 0.04}, ...]}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sluice.stats._files import read_json, write_json

FORMAT = "sluice.evaluation/1"
FILE_NAME = "evaluation.json"
TASKS = ("binary", "multiclass", "regression")


@dataclass
class SliceMetrics:
    """Metrics of the rows where ``feature`` equals ``value`` (``None`` is the NULL slice)."""

    feature: str
    value: Any
    metrics: dict[str, float | int | None]


@dataclass
class CalibrationBucket:
    """Rows whose prediction is in ``[lower, upper)`` (the last bucket closed): mean predicted vs observed."""

    lower: float
    upper: float
    count: int
    mean_prediction: float | None
    mean_label: float | None


@dataclass
class EvalResult:
    """What :func:`sluice.evaluate.compute_metrics` measured.

    Example::

        result = compute_metrics(engine, preds, "binary", slices=["country"])
        result.metrics["auc"]
        result.slice("country", "FR")["auc"]
        result.save("artifacts/evaluation")    # writes evaluation.json
    """

    task: str
    metrics: dict[str, float | int | None]
    slices: list[SliceMetrics] = field(default_factory=list)
    calibration: list[CalibrationBucket] = field(default_factory=list)
    slices_left_out: dict[str, int] = field(default_factory=dict)
    label: str = "label"
    prediction: str = "prediction"
    model: str | None = None

    def __getitem__(self, metric: str) -> float | int | None:
        return self.metrics[metric]

    def slice(self, feature: str, value: Any) -> dict[str, float | int | None]:
        """The metrics of one slice; KeyError naming the known slices if absent."""
        for s in self.slices:
            if s.feature == feature and s.value == value:
                return s.metrics
        known = sorted({repr(s.value) for s in self.slices if s.feature == feature})
        raise KeyError(f"no slice {feature}={value!r}; known values: {', '.join(known) or 'none'}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "task": self.task, "label": self.label, "prediction": self.prediction,
                "model": self.model, "metrics": dict(self.metrics),
                "slices": [asdict(s) for s in self.slices], "slices_left_out": dict(self.slices_left_out),
                "calibration": [asdict(b) for b in self.calibration]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalResult:
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"unsupported evaluation format {d.get('format')!r}; expected {FORMAT!r}")
        return cls(task=d["task"], metrics=dict(d["metrics"]),
                   slices=[SliceMetrics(**s) for s in d.get("slices", [])],
                   calibration=[CalibrationBucket(**b) for b in d.get("calibration", [])],
                   slices_left_out=dict(d.get("slices_left_out", {})),
                   label=d.get("label", "label"), prediction=d.get("prediction", "prediction"), model=d.get("model"))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``evaluation.json`` (``path`` is the file or its directory); returns the file."""
        return write_json(path, FILE_NAME, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvalResult:
        return cls.from_dict(read_json(path, FILE_NAME))

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same tables the web UI shows (``sluice.render``)."""
        from sluice.render import evaluation_html

        return evaluation_html(self)
