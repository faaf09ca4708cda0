"""Anomalies: what :func:`sluice.stats.validate` found wrong, each with a severity.

JSON layout (``anomalies.json``)::

    {"format": "sluice.anomalies/1",
     "anomalies": [
       {"kind": "missing_values", "severity": "error", "feature": "age", "split": "eval",
        "expected": "no missing values (required)", "seen": "3 of 100 rows missing (3.00%)",
        "description": "..."},
       {"kind": "drift", "severity": "error", "feature": "city", "split": "train",
        "expected": "L-infinity distance <= 0.1 (drift_threshold)", "seen": "...", "description": "...",
        "metric": "L-infinity distance", "distance": 0.3, "threshold": 0.1,
        "reference": "span 1 [train]", "compared": "span 2 [train]",
        "moved_value": "Paris", "reference_share": 0.5, "compared_share": 0.8}]}

The fields from ``metric`` on are present only for distribution comparisons
(``drift``, ``skew``, ``type_change``, ``comparison_skipped``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sluice.stats._files import read_json, write_json

Severity = Literal["error", "warning"]
FORMAT = "sluice.anomalies/1"
FILE_NAME = "anomalies.json"

#: Every kind of anomaly validation reports, with its default severity.
KINDS: dict[str, Severity] = {
    "empty_dataset": "error",
    "missing_feature": "error",
    "type_mismatch": "error",
    "missing_values": "error",
    "low_presence": "warning",
    "unexpected_feature": "warning",
    "out_of_range": "warning",      # error when the schema feature is strict
    "unknown_values": "warning",    # error when the schema feature is strict
    # Distribution comparisons (only for features with a drift/skew threshold in the schema).
    # A threshold is the user's explicit limit, so exceeding it is an error whatever `strict` says
    # (as in TFDV); allow_anomalies=True or a higher threshold lets an expected change through.
    "drift": "error",               # previous span -> this span, beyond drift_threshold
    "skew": "error",                # training -> serving data, beyond skew_threshold
    "type_change": "error",         # warning for int <-> float, which stay comparable
    "comparison_skipped": "warning",  # the feature or data is absent on one side: not measured
}

# Fields only distribution comparisons fill; left out of the JSON when unset.
_COMPARISON_FIELDS = ("metric", "distance", "threshold", "reference", "compared", "moved_value",
                      "reference_share", "compared_share")


@dataclass
class Anomaly:
    """One problem: which feature in which split, what was expected and what was seen."""

    kind: str
    severity: Severity
    feature: str | None
    split: str | None
    expected: str
    seen: str
    description: str = ""
    metric: str | None = None             # "L-infinity distance" | "Jensen-Shannon divergence"
    distance: float | None = None         # the distance measured
    threshold: float | None = None        # the schema's drift/skew threshold
    reference: str | None = None          # what was compared against: "span 1 [train]", "training data [train]"
    compared: str | None = None           # the data checked: "span 2 [train]", "serving data [serving]"
    moved_value: str | None = None        # string features: the value whose share moved most ...
    reference_share: float | None = None  # ... its share in the reference data
    compared_share: float | None = None   # ... and in the compared data

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in _COMPARISON_FIELDS:
            if d[key] is None:
                del d[key]
        return d

    def line(self) -> str:
        """One readable line, e.g. ``ERROR [eval] age: missing_values: expected ..., saw ...``."""
        where = f"[{self.split}] " if self.split else ""
        what = f"{self.feature}: " if self.feature else ""
        text = f"{self.severity.upper():7} {where}{what}{self.kind}: expected {self.expected}, saw {self.seen}"
        return text + (f" ({self.description})" if self.description else "")


@dataclass
class Anomalies:
    """The anomalies of one validation, in the order found.

    Example::

        anomalies = validate(stats, schema)
        if anomalies.has_errors:
            print(anomalies.summary())
        anomalies.save("artifacts/anomalies")   # writes anomalies.json
    """

    anomalies: list[Anomaly] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.anomalies)

    def __iter__(self) -> Iterator[Anomaly]:
        return iter(self.anomalies)

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "warning"]

    @property
    def has_errors(self) -> bool:
        return any(a.severity == "error" for a in self.anomalies)

    def of_kind(self, kind: str) -> list[Anomaly]:
        return [a for a in self.anomalies if a.kind == kind]

    def summary(self) -> str:
        """A readable multi-line report: a count line, then one line per anomaly (errors first)."""
        if not self.anomalies:
            return "No anomalies."
        e, w = len(self.errors), len(self.warnings)
        head = (f"{len(self.anomalies)} anomal{'y' if len(self.anomalies) == 1 else 'ies'} "
                f"({e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)})")
        return "\n".join([head] + ["  " + a.line() for a in self.errors + self.warnings])

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "anomalies": [a.to_dict() for a in self.anomalies]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Anomalies:
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"unsupported anomalies format {d.get('format')!r}; expected {FORMAT!r}")
        return cls([Anomaly(**a) for a in d.get("anomalies", [])])

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``anomalies.json`` (``path`` is the file or its directory); returns the file."""
        return write_json(path, FILE_NAME, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Anomalies:
        return cls.from_dict(read_json(path, FILE_NAME))

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same table the web UI shows (``sluice.render``)."""
        from sluice.render import anomalies_html

        return anomalies_html(self)
