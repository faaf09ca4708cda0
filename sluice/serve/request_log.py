"""Request logging to Parquet: a sample of served rows with their predictions.

Rows go to ``<dir>/<model>/part-<time>-<id>.parquet`` with the raw features plus
``_version``, ``_ts`` (UTC) and the prediction columns (``_probability``, ...).
Each file is written under a hidden temporary name and renamed, so a crash never
leaves a half file that looks whole. ``sluice validate-serving`` reads them back.

Example::

    log = RequestLog("serving-log", sample=0.1)
    log.record("ctr", 3, table, {"probability": probs})
    log.flush()
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("sluice.serve")


class RequestLog:
    """Buffers sampled requests per model and writes them as Parquet files atomically."""

    def __init__(self, directory: str, sample: float = 1.0, flush_rows: int = 10_000,
                 rng: random.Random | None = None) -> None:
        self.directory = os.path.abspath(directory)
        self.sample = sample
        self.flush_rows = flush_rows
        self.rng = rng or random.Random()
        self._buffers: dict[str, list[pa.Table]] = {}
        self._rows: dict[str, int] = {}
        self._lock = threading.Lock()

    def should_log(self) -> bool:
        """Whether to keep the next request (probability ``sample``)."""
        return self.sample >= 1 or (self.sample > 0 and self.rng.random() < self.sample)

    def record(self, model: str, version: int, table: pa.Table, outputs: dict[str, np.ndarray]) -> None:
        """Keep this request's rows with probability ``sample``; flushes a model's buffer when it is full."""
        if self.should_log():
            self.add(model, version, table, outputs)

    def add(self, model: str, version: int, table: pa.Table, outputs: dict[str, np.ndarray]) -> None:
        """Keep this request's rows (no sampling)."""
        n = table.num_rows
        extra = {"_version": pa.array(np.full(n, version, dtype=np.int64)),
                 "_ts": pa.array([datetime.now(timezone.utc)] * n, type=pa.timestamp("us", tz="UTC"))}
        for key, values in outputs.items():
            arr = np.asarray(values)
            if arr.ndim == 1:
                extra[f"_{key}"] = pa.array(arr)
        for key, col in extra.items():
            table = table.append_column(key, col)
        with self._lock:
            self._buffers.setdefault(model, []).append(table)
            self._rows[model] = self._rows.get(model, 0) + n
            full = self._rows[model] >= self.flush_rows
        if full:
            self.flush(model)

    def flush(self, model: str | None = None) -> list[str]:
        """Write buffered rows (of one model, or all); returns the files written."""
        with self._lock:
            names = [model] if model is not None else list(self._buffers)
            taken = {n: self._buffers.pop(n, []) for n in names}
            for n in names:
                self._rows.pop(n, None)
        written = []
        for name, tables in taken.items():
            if not tables:
                continue
            try:
                written.append(self._write(name, pa.concat_tables(tables, promote_options="default")))
            except Exception as exc:  # logging must never break serving
                log.warning("writing the request log of %s failed: %s", name, exc)
        return written

    def _write(self, model: str, table: pa.Table) -> str:
        folder = os.path.join(self.directory, model)
        os.makedirs(folder, exist_ok=True)
        stem = f"part-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = os.path.join(folder, f".tmp-{stem}")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, os.path.join(folder, stem))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return os.path.join(folder, stem)
