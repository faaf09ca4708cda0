"""Sluice as a library, on any registered engine: ``sluice.stats.compute`` and
``sluice.transform.fit`` + ``TransformGraph.transform`` (Parquet shards).

Every engine call is timed (a thin wrapper around the engine object, no change to Sluice),
so the result says which query or phase dominates: ``profile`` maps
``statistics.aggregate#1`` / ``transform.query#1`` / ``transform.map_batches#1`` ... to
seconds (medians over repeats), and ``map_batches`` is split into the time spent in
``graph.apply`` (the Arrow mappers) and the rest (DuckDB scan + Parquet writing).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from benchmarks.peers.features import preprocessing_fn


class _Timed:
    """Proxy an engine; record seconds per (phase, method, call number)."""

    METHODS = ("aggregate", "query", "map_batches", "schema", "count")

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.phase = ""
        self.calls: dict[str, float] = {}
        self._n: dict[str, int] = defaultdict(int)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if name not in self.METHODS:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            if name == "map_batches":  # split: apply (Python/Arrow) vs. scan + write
                fn = args[1]
                spent = [0.0]

                def wrapped(batch):
                    t = time.perf_counter()
                    out = fn(batch)
                    spent[0] += time.perf_counter() - t
                    return out

                args = (args[0], wrapped, *args[2:])
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                key = f"{self.phase}.{name}"
                self._n[key] += 1
                label = f"{key}#{self._n[key]}"
                self.calls[label] = time.perf_counter() - t0
                if name == "map_batches":
                    self.calls[f"{label}.apply"] = spent[0]
                    self.calls[f"{label}.scan+write"] = self.calls[label] - spent[0]

        return timed

    def reset(self, phase: str) -> None:
        self.phase = phase
        self._n.clear()


class Peer:
    def __init__(self, files: list[str], rows: int, work_dir: str, engine: str = "local", **options: Any):
        from sluice.engine import get_engine

        self._raw = get_engine(engine, **options)
        self.engine = _Timed(self._raw)
        self.ds = self._raw.read_parquet(files)
        self.profile: dict[str, list[float]] = defaultdict(list)

    def _keep(self) -> None:
        for k, v in self.engine.calls.items():
            self.profile[k].append(v)
        self.engine.calls = {}

    def statistics(self) -> int:
        from sluice.stats.compute import compute

        self.engine.reset("statistics")
        stats = compute(self.engine, self.ds)
        self._keep()
        return stats.num_rows

    def transform(self, out_dir: str) -> int:
        import sluice.transform as st

        self.engine.reset("transform")
        t0 = time.perf_counter()
        graph = st.fit(self.engine, self.ds, preprocessing_fn)
        self.profile["transform.fit (total)"].append(time.perf_counter() - t0)
        result = graph.transform(self.engine, self.ds, out_dir)
        self._keep()
        return result.rows

    def extras(self) -> dict[str, Any]:
        return {"profile": dict(self.profile)}

    def close(self) -> None:
        self._raw.close()
