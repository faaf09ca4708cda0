"""The statistics data model: what :func:`sluice.stats.compute` produces.

Per dataset (one split) a :class:`DatasetStatistics` holds the row count and
one :class:`FeatureStatistics` per column: its type, count and missing values,
plus :class:`NumericStatistics` for int/float/bool columns or
:class:`StringStatistics` for string columns.

Exact and approximate values:

- exact: ``num_rows``, ``count``, ``missing``, ``mean``, ``std`` (population,
  ``ddof=0``), ``min``, ``max``, ``zeros``, ``non_finite``, histogram counts,
  string ``distinct``, ``top_values``, ``value_counts``, lengths and ``empty``
  (up to floating point summation order for mean and std);
- approximate: ``quantiles`` only. The local engine uses DuckDB's
  ``approx_quantile`` (a t-digest); its rank error is below 1% (measured
  < 0.3% on 10^5..10^6 rows; exact on small data). On Spark,
  ``percentile_approx`` has a rank error of at most 1/accuracy.

``distinct`` is exact because it is counted from the same GROUP BY that gives
the top-k values, which visits every value anyway; DuckDB's
``approx_count_distinct`` was off by up to 40% in our measurements.

JSON layout (``statistics.json``)::

    {"format": "sluice.statistics/1", "split": "train", "num_rows": 1000,
     "options": {"histogram_buckets": 10, "top_k": 10, "quantiles": 10, "vocabulary_limit": 100},
     "features": {
       "age": {"type": "int", "count": 990, "missing": 10,
               "numeric": {"mean": 38.2, "std": 12.1, "min": 17, "max": 90, "zeros": 0, "non_finite": 0,
                           "quantiles": [[0.0, 17.0], [0.1, 22.0], ..., [1.0, 90.0]],
                           "histogram": {"boundaries": [17.0, 24.3, ..., 90.0], "counts": [120, ...]}}},
       "city": {"type": "string", "count": 1000, "missing": 0,
                "string": {"distinct": 3, "min_length": 2, "avg_length": 5.1, "max_length": 9, "empty": 0,
                           "top_values": [{"value": "Paris", "count": 500}, ...],
                           "value_counts": [{"value": "Paris", "count": 500}, ...]}}}}
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sluice.stats._files import read_json, write_json

FeatureType = Literal["int", "float", "string", "bool", "other"]
FORMAT = "sluice.statistics/1"
FILE_NAME = "statistics.json"


@dataclass
class Histogram:
    """Equal-width buckets: bucket i is ``[boundaries[i], boundaries[i+1])``, the last one closed."""

    boundaries: list[float]
    counts: list[int]


@dataclass
class NumericStatistics:
    """Statistics of an int, float or bool column (bools count as 0/1).

    NaN and infinite values are counted in ``non_finite`` and left out of every
    other number, so one bad value cannot turn the mean into NaN unnoticed.
    """

    mean: float | None
    std: float | None
    min: float | int | None
    max: float | int | None
    zeros: int
    non_finite: int = 0
    quantiles: list[tuple[float, float]] = field(default_factory=list)
    histogram: Histogram | None = None

    @property
    def median(self) -> float | None:
        """The approximate median, when 0.5 is one of the quantile points."""
        return next((v for q, v in self.quantiles if abs(q - 0.5) < 1e-12), None)


@dataclass
class ValueCount:
    value: str
    count: int


@dataclass
class StringStatistics:
    """Statistics of a string column.

    ``top_values`` are the ``top_k`` most frequent values (ties by value,
    ascending); ``value_counts`` lists every value when the column has at most
    ``vocabulary_limit`` distinct values (None otherwise) and feeds schema
    domains and drift.
    """

    distinct: int
    top_values: list[ValueCount]
    value_counts: list[ValueCount] | None
    min_length: int | None
    avg_length: float | None
    max_length: int | None
    empty: int


@dataclass
class FeatureStatistics:
    """One column: ``count`` non-missing values, ``missing`` NULLs."""

    name: str
    type: FeatureType
    count: int
    missing: int
    numeric: NumericStatistics | None = None
    string: StringStatistics | None = None

    @property
    def presence(self) -> float:
        """Fraction of rows with a value (1.0 for an empty dataset)."""
        total = self.count + self.missing
        return self.count / total if total else 1.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "count": self.count, "missing": self.missing}
        if self.numeric is not None:
            d["numeric"] = asdict(self.numeric)
        if self.string is not None:
            d["string"] = asdict(self.string)
        return d

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> FeatureStatistics:
        numeric = string = None
        if d.get("numeric") is not None:
            n = dict(d["numeric"])
            n["quantiles"] = [(float(q), v) for q, v in n.get("quantiles", [])]
            n["histogram"] = Histogram(**n["histogram"]) if n.get("histogram") else None
            numeric = NumericStatistics(**n)
        if d.get("string") is not None:
            s = dict(d["string"])
            s["top_values"] = [ValueCount(**v) for v in s["top_values"]]
            if s.get("value_counts") is not None:
                s["value_counts"] = [ValueCount(**v) for v in s["value_counts"]]
            string = StringStatistics(**s)
        return cls(name, d["type"], int(d["count"]), int(d["missing"]), numeric, string)


@dataclass
class DatasetStatistics:
    """Statistics of one dataset (one split), feature by feature.

    Example::

        stats = sluice.stats.compute(engine, ds)
        stats["age"].numeric.mean
        stats.save("artifacts/stats/train")        # writes statistics.json
        DatasetStatistics.load("artifacts/stats/train")
    """

    num_rows: int
    features: dict[str, FeatureStatistics]
    split: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> FeatureStatistics:
        try:
            return self.features[name]
        except KeyError:
            raise KeyError(f"no feature {name!r} in the statistics; features: {', '.join(self.features)}") from None

    def __repr__(self) -> str:  # the full dataclass repr runs to pages
        names = ", ".join(f"{f.name}:{f.type}" for f in self)
        return f"DatasetStatistics(split={self.split!r}, num_rows={self.num_rows}, features=[{names}])"

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self) -> Iterator[FeatureStatistics]:
        return iter(self.features.values())

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "split": self.split, "num_rows": self.num_rows, "options": dict(self.options),
                "features": {name: f.to_dict() for name, f in self.features.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetStatistics:
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"unsupported statistics format {d.get('format')!r}; expected {FORMAT!r}")
        features = {name: FeatureStatistics.from_dict(name, f) for name, f in d["features"].items()}
        return cls(int(d["num_rows"]), features, d.get("split"), dict(d.get("options", {})))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``statistics.json`` (``path`` is the file or its directory); returns the file."""
        return write_json(path, FILE_NAME, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetStatistics:
        """Read statistics written by :meth:`save`."""
        return cls.from_dict(read_json(path, FILE_NAME))

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same table the web UI shows (``sluice.render``)."""
        from sluice.render import statistics_html

        return statistics_html(self)


def save_splits(stats: Mapping[str, DatasetStatistics], directory: str | os.PathLike[str]) -> list[str]:
    """Write each split's statistics to ``directory/<split>/statistics.json`` (the Examples layout).

    Example::

        save_splits(compute_splits(engine, {"train": tr, "eval": ev}), "artifacts/stats")
    """
    return [s.save(os.path.join(os.fspath(directory), name)) for name, s in stats.items()]


def load_splits(directory: str | os.PathLike[str]) -> dict[str, DatasetStatistics]:
    """Read every ``<split>/statistics.json`` under ``directory``, by split name (sorted)."""
    directory = os.fspath(directory)
    out: dict[str, DatasetStatistics] = {}
    for name in sorted(os.listdir(directory)):
        if os.path.isfile(os.path.join(directory, name, FILE_NAME)):
            out[name] = DatasetStatistics.load(os.path.join(directory, name))
    if not out:
        raise FileNotFoundError(f"no <split>/{FILE_NAME} under {directory!r}; write them with save_splits()")
    return out
