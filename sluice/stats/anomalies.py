"""Anomalies: what :func:`sluice.stats.validate` found wrong, each with a severity.

JSON layout (``anomalies.json``)::

    {"format": "sluice.anomalies/1",
     "anomalies": [
       {"kind": "missing_values", "severity": "error", "feature": "age", "split": "eval",
        "expected": "no missing values (required)", "seen": "3 of 100 rows missing (3.00%)",
        "description": "..."}]}
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sluice.stats._display import html_table
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
}


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
        return {"format": FORMAT, "anomalies": [asdict(a) for a in self.anomalies]}

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
        rows = [[a.severity, a.split or "", a.feature or "", a.kind, a.expected, a.seen] for a in self]
        return html_table(["severity", "split", "feature", "kind", "expected", "seen"], rows,
                          caption=self.summary().splitlines()[0])
