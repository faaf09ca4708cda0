"""The release gate: bless a candidate model or not, and always say why.

Thresholds follow TFMA: a value threshold bounds the candidate's metric
(``lower_bound``, ``upper_bound``); a change threshold bounds its change
against the baseline, ``candidate - baseline`` (``max_decrease``: the metric
may drop at most this much; ``max_increase``: it may rise at most this much).
Use ``max_decrease`` for higher-is-better metrics (auc, accuracy) and
``max_increase`` for lower-is-better ones (log_loss, rmse, mae);
:meth:`Threshold.no_regression` picks the right one.

A blessing always carries reasons, also with no baseline ("first model") and
no thresholds ("blessed by default"), and a forced blessing says so.

JSON layout (``blessing.json``)::

    {"format": "sluice.blessing/1", "blessed": true, "forced": false,
     "reasons": ["auc 0.781 >= lower bound 0.7", "auc 0.781 vs baseline 0.774: +0.007 (better) >= -0.01"],
     "checks": [{"metric": "auc", "kind": "lower_bound", "passed": true, "value": 0.781, "baseline": null,
                 "bound": 0.7, "text": "auc 0.781 >= lower bound 0.7"}, ...],
     "thresholds": {"auc": {"lower_bound": 0.7, "upper_bound": null, "max_decrease": 0.01, "max_increase": null}},
     "candidate_metrics": {"auc": 0.781, ...}, "baseline_metrics": {"auc": 0.774, ...}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sluice.evaluate.result import EvalResult
from sluice.formatting import fmt
from sluice.stats._files import read_json, write_json

FORMAT = "sluice.blessing/1"
FILE_NAME = "blessing.json"
NO_BASELINE = "no baseline: first model, judged on thresholds only"
NO_THRESHOLDS = "no thresholds set: blessed by default"
#: Which direction is better, per metric; used to word changes and by Threshold.no_regression.
HIGHER_IS_BETTER: dict[str, bool] = {
    "auc": True, "accuracy": True, "log_loss": False, "rmse": False, "mae": False,
}
# Metric values are floats: a change of exactly -0.01 must pass max_decrease=0.01.
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Threshold:
    """Bounds on a metric's value and on its change against the baseline (see module doc).

    Example::

        Threshold(lower_bound=0.7, max_decrease=0.01)   # auc >= 0.7 and at most 0.01 below baseline
    """

    lower_bound: float | None = None
    upper_bound: float | None = None
    max_decrease: float | None = None
    max_increase: float | None = None

    def __post_init__(self) -> None:
        if all(v is None for v in asdict(self).values()):
            raise ValueError("a Threshold needs at least one of lower_bound, upper_bound, max_decrease, max_increase")
        for name in ("max_decrease", "max_increase"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0 (it is a size of change), got {v}")

    @classmethod
    def no_regression(cls, metric: str, tolerance: float = 0.0) -> Threshold:
        """The candidate may be at most ``tolerance`` worse than the baseline on ``metric``."""
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown direction for {metric!r}; known: {', '.join(HIGHER_IS_BETTER)}. "
                             "Use Threshold(max_decrease=...) or Threshold(max_increase=...)")
        return cls(max_decrease=tolerance) if HIGHER_IS_BETTER[metric] else cls(max_increase=tolerance)


@dataclass
class Check:
    """One threshold tested: ``passed`` is None when it could not apply (no baseline)."""

    metric: str
    kind: str
    passed: bool | None
    value: float | None
    baseline: float | None
    bound: float | None
    text: str


@dataclass
class Blessing:
    """The gate's decision with its reasons.

    Example::

        blessing = decide(candidate, baseline, {"auc": Threshold(lower_bound=0.7, max_decrease=0.01)})
        print(blessing.one_line())    # BLESSED auc=0.781 (>= 0.7; baseline 0.774, +0.007 >= -0.01)
        blessing.save("artifacts/blessing")
    """

    blessed: bool
    reasons: list[str]
    forced: bool = False
    candidate_metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    thresholds: dict[str, Threshold] = field(default_factory=dict)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def one_line(self) -> str:
        """A single readable line: the verdict, then the failures or each metric's standing."""
        if self.forced:
            why = "; ".join(c.text for c in self.failures) or "all checks passed"
            return f"BLESSED (FORCED): {why}"
        if not self.blessed:
            return "NOT BLESSED: " + "; ".join(c.text for c in self.failures)
        if not self.thresholds:
            return f"BLESSED ({NO_THRESHOLDS}{'; ' + NO_BASELINE if self.baseline_metrics is None else ''})"
        parts = []
        for metric in self.thresholds:
            checks = [c for c in self.checks if c.metric == metric and c.passed]
            if not checks:
                continue
            notes = []
            for c in checks:
                if c.kind == "lower_bound":
                    notes.append(f">= {fmt(c.bound)}")
                elif c.kind == "upper_bound":
                    notes.append(f"<= {fmt(c.bound)}")
                else:
                    assert c.value is not None and c.baseline is not None and c.bound is not None
                    op, limit = (">=", -c.bound) if c.kind == "max_decrease" else ("<=", c.bound)
                    notes.append(f"baseline {fmt(c.baseline)}, {_signed(c.value - c.baseline)} {op} {_signed(limit)}")
            parts.append(f"{metric}={fmt(checks[0].value)} ({'; '.join(notes)})")
        if not parts:  # only change thresholds, and no baseline to apply them to
            return "BLESSED (" + "; ".join(self.reasons) + ")"
        line = "BLESSED " + "; ".join(parts)
        return line + ("; no baseline" if self.baseline_metrics is None else "")

    def __str__(self) -> str:
        return self.one_line()

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "blessed": self.blessed, "forced": self.forced, "reasons": list(self.reasons),
                "checks": [asdict(c) for c in self.checks],
                "thresholds": {m: asdict(t) for m, t in self.thresholds.items()},
                "candidate_metrics": dict(self.candidate_metrics),
                "baseline_metrics": None if self.baseline_metrics is None else dict(self.baseline_metrics)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Blessing:
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"unsupported blessing format {d.get('format')!r}; expected {FORMAT!r}")
        return cls(blessed=bool(d["blessed"]), reasons=list(d["reasons"]), forced=bool(d.get("forced", False)),
                   candidate_metrics=dict(d.get("candidate_metrics", {})), baseline_metrics=d.get("baseline_metrics"),
                   checks=[Check(**c) for c in d.get("checks", [])],
                   thresholds={m: Threshold(**t) for m, t in d.get("thresholds", {}).items()})

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``blessing.json`` (``path`` is the file or its directory); returns the file."""
        return write_json(path, FILE_NAME, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Blessing:
        return cls.from_dict(read_json(path, FILE_NAME))

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same decision panel the web UI shows (``sluice.render``)."""
        from sluice.render import blessing_html

        return blessing_html(self)


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "") + fmt(x)


def decide(candidate: EvalResult, baseline: EvalResult | None,
           thresholds: Mapping[str, Threshold | Mapping[str, float]] | None = None, *,
           force: bool = False) -> Blessing:
    """Bless the candidate if every threshold holds; the reasons say what was checked.

    Change thresholds need a baseline; without one they are recorded as not
    checked and the model is judged on its value thresholds. A metric the
    candidate (or, for change thresholds, the baseline) lacks fails its check.
    ``force=True`` blesses anyway and records it.

    Example::

        decide(candidate, None, {})                    # blessed: no thresholds set
        decide(candidate, baseline, {"auc": Threshold(max_decrease=0.01),
                                     "log_loss": Threshold(upper_bound=0.5)})
        decide(candidate, baseline, {"auc": Threshold(lower_bound=0.9)}, force=True)
    """
    if baseline is not None and baseline.task != candidate.task:
        raise ValueError(f"cannot compare a {candidate.task} candidate with a {baseline.task} baseline")
    limits = {m: t if isinstance(t, Threshold) else Threshold(**t) for m, t in (thresholds or {}).items()}
    reasons: list[str] = []
    if baseline is None:
        reasons.append(NO_BASELINE)
    if not limits:
        reasons.append(NO_THRESHOLDS)
    checks = [c for metric, t in limits.items() for c in _check(metric, t, candidate, baseline)]
    reasons += [c.text for c in checks]
    blessed = all(c.passed is not False for c in checks)
    if force:
        reasons.append("forced: blessed by the user" + ("" if blessed else " although checks failed"))
    return Blessing(blessed=blessed or force, reasons=reasons, forced=force,
                    candidate_metrics=dict(candidate.metrics),
                    baseline_metrics=None if baseline is None else dict(baseline.metrics),
                    checks=checks, thresholds=limits)


def _check(metric: str, t: Threshold, candidate: EvalResult, baseline: EvalResult | None) -> list[Check]:
    value = candidate.metrics.get(metric)
    if value is None:
        why = ("not computed for the candidate (metrics: " + ", ".join(candidate.metrics) + ")"
               if metric not in candidate.metrics else "undefined for the candidate (e.g. only one class present)")
        return [Check(metric, "value", False, None, None, None, f"{metric}: {why}")]
    out = []
    if t.lower_bound is not None:
        ok = value >= t.lower_bound - _TOLERANCE
        out.append(Check(metric, "lower_bound", ok, value, None, t.lower_bound,
                         f"{metric} {fmt(value)} {'>=' if ok else '<'} lower bound {fmt(t.lower_bound)}"))
    if t.upper_bound is not None:
        ok = value <= t.upper_bound + _TOLERANCE
        out.append(Check(metric, "upper_bound", ok, value, None, t.upper_bound,
                         f"{metric} {fmt(value)} {'<=' if ok else '>'} upper bound {fmt(t.upper_bound)}"))
    for kind, limit in (("max_decrease", t.max_decrease), ("max_increase", t.max_increase)):
        if limit is None:
            continue
        if baseline is None:
            out.append(Check(metric, kind, None, value, None, limit,
                             f"{metric}: {kind.replace('_', ' ')} {fmt(limit)} not checked (no baseline)"))
            continue
        base = baseline.metrics.get(metric)
        if base is None:
            out.append(Check(metric, kind, False, value, None, limit,
                             f"{metric}: the baseline has no value, so its change cannot be checked"))
            continue
        change = value - base
        if kind == "max_decrease":
            ok, op = change >= -limit - _TOLERANCE, (">=", "<")
            bound = -limit
        else:
            ok, op = change <= limit + _TOLERANCE, ("<=", ">")
            bound = limit
        out.append(Check(metric, kind, ok, value, base, limit,
                         f"{metric} {fmt(value)} vs baseline {fmt(base)}: "
                         f"{_signed(change)}{_direction(metric, change)} "
                         f"{op[0] if ok else op[1]} {_signed(bound)} ({kind.replace('_', ' ')} {fmt(limit)})"))
    return out


def _direction(metric: str, change: float) -> str:
    higher = HIGHER_IS_BETTER.get(metric)
    if higher is None or abs(change) <= _TOLERANCE:
        return ""
    return " (better)" if (change > 0) == higher else " (worse)"
