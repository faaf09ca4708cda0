"""Distance between one feature's distributions in two statistics (drift, skew).

- string features: L-infinity distance between the value distributions
  (largest difference of any value's share), as TFDV's drift comparator;
- numeric features: Jensen-Shannon divergence (base 2, so in [0, 1]) between
  the histograms, re-binned onto the union of both bucket boundaries with
  the mass spread uniformly inside each bucket.

Both are computed from statistics alone, never from data. For string
features with more distinct values than ``vocabulary_limit`` only the top
values are known; a value outside one side's top values counts as 0 there,
so the distance is then an approximation.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from sluice.stats.statistics import DatasetStatistics, FeatureStatistics, Histogram

LINF = "L-infinity distance"
JS = "Jensen-Shannon divergence"


@dataclass(frozen=True)
class Distance:
    """How far one feature moved between two statistics, and by which measure.

    For string features ``value`` is the value whose share moved most, with
    its share in each dataset (``share_a``, ``share_b``); None for numbers.

    Example::

        d = feature_distance(train["city"], serving["city"])
        d.metric, d.value, d.moved_value   # ('L-infinity distance', 0.3, 'Paris')
    """

    metric: str
    value: float
    moved_value: str | None = None
    share_a: float | None = None
    share_b: float | None = None


def feature_distance(a: FeatureStatistics, b: FeatureStatistics) -> Distance:
    """Distance between two statistics of one feature: L-inf for strings, JS divergence for numbers.

    Raises ValueError when the two sides cannot be compared (a string and a number).

    Example::

        feature_distance(span1["age"], span2["age"]).value   # 0.0 .. 1.0
    """
    if a.string is not None and b.string is not None:
        return _linf_detail(a, b)
    if a.numeric is not None and b.numeric is not None:
        if a.numeric.histogram is None or b.numeric.histogram is None:
            # No histogram means no finite value on that side: identical if both are empty.
            return Distance(JS, 0.0 if a.numeric.histogram is b.numeric.histogram else 1.0)
        return Distance(JS, js_divergence(a.numeric.histogram, b.numeric.histogram))
    raise ValueError(f"feature {a.name!r}: cannot compare a {a.type} column with a {b.type} column")


def drift_distance(stats_a: DatasetStatistics, stats_b: DatasetStatistics, feature: str) -> float:
    """Distance between ``feature`` in two statistics: L-inf for strings, JS divergence for numbers.

    Example::

        drift_distance(train_stats, serving_stats, "country")   # 0.12: a share moved by 12 points
        drift_distance(train_stats, serving_stats, "age")       # 0.0 .. 1.0
    """
    return feature_distance(stats_a[feature], stats_b[feature]).value


def linf_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """Largest absolute difference between the two value shares of any value."""
    return _linf_detail(a, b).value


def _shares(f: FeatureStatistics) -> dict[str, float]:
    s = f.string
    assert s is not None
    known = s.value_counts if s.value_counts is not None else s.top_values
    return {v.value: v.count / f.count for v in known} if f.count else {}


def _linf_detail(a: FeatureStatistics, b: FeatureStatistics) -> Distance:
    sa, sb = _shares(a), _shares(b)
    # Sorted values: among equal moves the smallest value is named, so reports are repeatable.
    best: tuple[float, str | None] = (0.0, None)
    for v in sorted(set(sa) | set(sb)):
        moved = abs(sa.get(v, 0.0) - sb.get(v, 0.0))
        if moved > best[0]:
            best = (moved, v)
    moved, value = best
    if value is None:
        return Distance(LINF, 0.0)
    return Distance(LINF, moved, value, sa.get(value, 0.0), sb.get(value, 0.0))


def _rebin(h: Histogram, edges: list[float]) -> dict[tuple[str, float], float]:
    """Mass of ``h`` on each interval of ``edges`` (a sorted superset of its boundaries).

    A zero-width bucket (a constant column) is a point mass: it gets its own
    key, as it shares no mass with any interval around it.
    """
    out: dict[tuple[str, float], float] = {}
    for j, c in enumerate(h.counts):
        lo, hi = h.boundaries[j], h.boundaries[j + 1]
        if c == 0:
            continue
        if hi <= lo:
            out[("point", lo)] = out.get(("point", lo), 0.0) + c
            continue
        k = bisect.bisect_left(edges, lo)
        while k < len(edges) - 1 and edges[k] < hi:
            overlap = min(hi, edges[k + 1]) - max(lo, edges[k])
            if overlap > 0:
                out[("interval", edges[k])] = out.get(("interval", edges[k]), 0.0) + c * overlap / (hi - lo)
            k += 1
    return out


def js_divergence(a: Histogram, b: Histogram) -> float:
    """Jensen-Shannon divergence (base 2) between two histograms with any boundaries."""
    edges = sorted(set(a.boundaries) | set(b.boundaries))
    mass_a, mass_b = _rebin(a, edges), _rebin(b, edges)
    keys = sorted(set(mass_a) | set(mass_b))
    sp, sq = sum(mass_a.values()), sum(mass_b.values())
    if sp == 0 or sq == 0:
        return 0.0 if sp == sq else 1.0
    p, q = [mass_a.get(k, 0.0) / sp for k in keys], [mass_b.get(k, 0.0) / sq for k in keys]

    def kl(x: list[float], m: list[float]) -> float:
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m) if xi > 0)

    m = [(x + y) / 2 for x, y in zip(p, q)]
    return min(max(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0), 1.0)
