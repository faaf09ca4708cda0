"""Which versions of a model are loaded, what labels point at, and how traffic is split.

- Policy: the newest N versions (``latest``), a pinned list (``specific``), or all.
  Versions a label points at are loaded too, so a rollback to an older version works.
- Labels: static ones from the config (``stable: 3``) over the metadata store's
  aliases (``production``, ``staging``), re-read on every poll.
- Default version (a request naming no version or label): the traffic split if one
  is configured, else the version of the default label (``production``) when it is
  loaded, else the newest loaded version.

Example::

    wanted_versions([1, 2, 3, 4], latest=2, specific=None, labels={"production": 1})   # [1, 3, 4]
    TrafficSplit({"stable": 90, "canary": 10}).choose({"stable": 3, "canary": 4})        # 3 or 4
"""

from __future__ import annotations

import random
from typing import Any


def wanted_versions(available: list[int], latest: int | None, specific: list[int] | None,
                    labels: dict[str, int]) -> list[int]:
    """The versions to load: the policy's choice plus every labelled version that exists."""
    if specific is not None:
        chosen = {v for v in specific if v in available}
    elif latest is not None:
        chosen = set(sorted(available)[-latest:]) if available else set()
    else:
        chosen = set(available)
    chosen |= {v for v in labels.values() if v in available}
    return sorted(chosen)


def store_aliases(store: Any, name: str) -> dict[str, int]:
    """``{alias: version}`` of model ``name`` in a metadata store (empty when it has none)."""
    out: dict[str, int] = {}
    for mv in store.model_versions(name):
        for alias in mv.aliases:
            out[alias] = mv.version
    return out


class TrafficSplit:
    """Weighted random choice between versions for A/B tests; keys are labels or version numbers."""

    def __init__(self, weights: dict[str, float], rng: random.Random | None = None) -> None:
        self.weights = dict(weights)
        self.rng = rng or random.Random()

    def targets(self, labels: dict[str, int], loaded: set[int]) -> tuple[list[int], list[float]]:
        """Versions and weights that can take traffic now (unresolved or unloaded targets drop out)."""
        versions, weights = [], []
        for key, weight in self.weights.items():
            version = int(key) if key.isdigit() else labels.get(key)
            if version in loaded and weight > 0:
                versions.append(version)
                weights.append(weight)
        return versions, weights

    def choose(self, labels: dict[str, int], loaded: set[int] | None = None) -> int | None:
        """One version by weight, or None when no target is loaded."""
        versions, weights = self.targets(labels, set(labels.values()) if loaded is None else loaded)
        if not versions:
            return None
        return self.rng.choices(versions, weights)[0]
