"""Stream model-ready Parquet shards into PyTorch batches, shuffled, in bounded memory.

The unit of work is a Parquet *row group*. Each epoch the loader orders all row groups
under ``(seed, epoch)``, keeps every ``world_size``-th one for its ``rank`` (the seam for
distributed data parallel), reads them with pyarrow (only the needed columns) in
``num_workers`` threads, turns columns into numpy matrices, and mixes rows across row
groups through a fixed-size shuffle buffer (like ``tf.data``'s ``shuffle``). A background
thread keeps ``prefetch`` batches ready. No per-row Python work anywhere.

Example::

    specs = [FeatureSpec("age_z", "numeric"), FeatureSpec("country", "categorical", 201)]
    loader = ParquetBatchLoader(["train/part-0.parquet"], specs, label="clicked", batch_size=1024)
    for epoch in range(3):
        loader.set_epoch(epoch)
        for batch in loader:
            batch.dense   # float32 [B, 1]
            batch.sparse  # int64   [B, 1]
            batch.label   # float32 [B]
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from sluice.features import FeatureSpec

__all__ = ["Batch", "ParquetBatchLoader", "RowGroup", "label_dtype_for"]


@dataclass
class Batch:
    """One training batch: ``dense`` float32 [B, n_numeric], ``sparse`` int64 [B, n_categorical],
    ``label`` [B] (float32 or int64) or None when the loader has no label."""

    dense: torch.Tensor
    sparse: torch.Tensor
    label: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.dense.shape[0])


@dataclass(frozen=True)
class RowGroup:
    """One row group of one Parquet file: the loader's unit of work and of sharding.

    ``start`` (offset in the row group) is set when the unit is a slice of a row group:
    ``num_rows`` rows from ``start`` (see ``ParquetBatchLoader``'s sharding note)."""

    path: str
    index: int
    num_rows: int
    start: int | None = None


def label_dtype_for(task: str) -> str:
    """Label dtype a task's loss expects: int64 class ids for multiclass, float32 otherwise."""
    return "int64" if task == "multiclass" else "float32"


# A chunk is (dense [m, n_num] float32, sparse [m, n_cat] int64, label [m] or None).
_Chunk = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]
_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ParquetBatchLoader:
    """Iterate :class:`Batch` objects over Parquet files, each row exactly once per epoch.

    - ``shuffle``: row-group order is permuted per epoch under ``(seed, epoch)``, and rows pass
      through a buffer of ``shuffle_buffer`` rows from which each batch is drawn uniformly. The
      buffer is the memory bound: at most ``shuffle_buffer`` rows plus the row groups being read
      and ``prefetch`` batches are held, whatever the data size.
    - ``rank`` / ``world_size``: this process reads row groups ``rank, rank + world_size, ...`` of
      the epoch's order, so ranks together cover every row group once. Ranks may get different
      row counts when row groups differ in size (a DDP caller must even them out). With fewer
      than ``4 * world_size`` row groups that would be too uneven (one row group and two ranks
      leaves a rank idle), so each rank instead takes its ``1/world_size`` slice of every row
      group: balanced to a row, at the price of every rank decoding every row group.
    - ``num_workers``: threads reading row groups ahead (pyarrow releases the GIL while decoding).
    - ``prefetch``: batches a background thread keeps ready; 0 iterates in the caller's thread.
    - Iterating without :meth:`set_epoch` advances the epoch by one each time, so a forgotten
      ``set_epoch`` never repeats the same order; calling it pins the epoch explicitly.

    Null values or categorical ids outside ``[0, cardinality)`` raise ``ValueError``: the loader
    expects the transform's model-ready output and fails loudly rather than train on garbage.
    """

    def __init__(
        self,
        files: Sequence[str],
        features: Sequence[FeatureSpec],
        label: str | None = None,
        *,
        batch_size: int = 4096,
        shuffle: bool = True,
        shuffle_buffer: int = 100_000,
        seed: int = 0,
        drop_last: bool = False,
        label_dtype: str = "float32",
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 1,
        prefetch: int = 4,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if label_dtype not in ("float32", "int64"):
            raise ValueError(f"label_dtype must be 'float32' or 'int64', got {label_dtype!r}")
        self.features = list(features)
        self.label = label
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_buffer = max(int(shuffle_buffer), batch_size)
        self.seed = seed
        self.drop_last = drop_last
        self.label_dtype = np.dtype(label_dtype)
        self.rank = rank
        self.world_size = world_size
        self.num_workers = max(1, num_workers)
        self.prefetch = max(0, prefetch)
        self._numeric = [f.name for f in self.features if f.kind == "numeric"]
        self._categorical = [(f.name, int(f.cardinality or 0)) for f in self.features if f.kind == "categorical"]
        self._columns = self._numeric + [n for n, _ in self._categorical] + ([label] if label else [])
        self._epoch = 0
        self._spare: np.ndarray | None = None  # the shuffle buffer, kept between epochs
        self._metadata: dict[str, pq.FileMetaData] = {}
        self._fs: dict[str, tuple[pafs.FileSystem, str]] = {}
        self._row_groups = self._scan(files)

    # ---------------------------------------------------------------- planning

    def _scan(self, files: Sequence[str]) -> list[RowGroup]:
        """Read every footer once: row-group sizes for planning, schemas to fail early."""
        units: list[RowGroup] = []
        for path in _expand(files):
            fs, inner = _filesystem(path)
            with fs.open_input_file(inner) as fh:
                md = pq.read_metadata(fh)
            names = set(md.schema.to_arrow_schema().names)
            missing = [c for c in self._columns if c not in names]
            if missing:
                raise ValueError(f"{path}: missing columns {missing}; it has {sorted(names)}")
            self._metadata[path] = md
            self._fs[path] = (fs, inner)
            units += [RowGroup(path, i, md.row_group(i).num_rows) for i in range(md.num_row_groups)]
        return units

    def set_epoch(self, epoch: int) -> None:
        """Pin the epoch the next iteration uses (decides the shuffle order)."""
        self._epoch = int(epoch)

    def shard(self, epoch: int) -> list[RowGroup]:
        """This rank's row groups for ``epoch``, in reading order.

        The order is the same on every rank (it depends only on seed and epoch), so slicing it
        by rank partitions the row groups without overlap.
        """
        return self._shard_of(epoch, self.rank)

    def rows_per_rank(self, epoch: int) -> list[int]:
        """Rows each rank reads in ``epoch`` (index = rank): what a DDP caller needs to even out steps."""
        return [sum(u.num_rows for u in self._shard_of(epoch, r)) for r in range(self.world_size)]

    @property
    def slices_row_groups(self) -> bool:
        """Whether ranks share each row group by slices (too few row groups to deal them out)."""
        return self.world_size > 1 and len(self._row_groups) < 4 * self.world_size

    def _shard_of(self, epoch: int, rank: int) -> list[RowGroup]:
        units = self.shard_order(epoch)
        if not self.slices_row_groups:
            return units[rank :: self.world_size]
        out = []
        for u in units:
            lo, hi = (u.num_rows * rank) // self.world_size, (u.num_rows * (rank + 1)) // self.world_size
            if hi > lo:
                out.append(RowGroup(u.path, u.index, hi - lo, lo))
        return out

    def shard_order(self, epoch: int) -> list[RowGroup]:
        """All row groups in ``epoch``'s reading order, before slicing by rank."""
        units = self._row_groups
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(units))
            units = [units[i] for i in order]
        return units

    @property
    def num_rows(self) -> int:
        """Rows this rank reads per epoch (the same every epoch only when row groups are equal)."""
        return sum(u.num_rows for u in self.shard(self._epoch))

    def __len__(self) -> int:
        """Batches in the next epoch."""
        n = self.num_rows
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # --------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[Batch]:
        epoch = self._epoch
        self._epoch = epoch + 1
        if self.prefetch == 0:
            with contextlib.closing(self._batches(epoch)) as batches:
                yield from batches
            return
        yield from self._prefetched(epoch)

    def _prefetched(self, epoch: int) -> Iterator[Batch]:
        """Run :meth:`_batches` in a thread feeding a bounded queue; stop it if the consumer leaves."""
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                with contextlib.closing(self._batches(epoch)) as batches:
                    for b in batches:
                        if not put(b):
                            return
                put(_END)
            except BaseException as exc:  # handed to the consumer, re-raised there
                put(_Failure(exc))

        thread = threading.Thread(target=produce, name=f"sluice-loader-{self.rank}", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            stop.set()
            thread.join()

    def _batches(self, epoch: int) -> Iterator[Batch]:
        layout = _Records(len(self._numeric), len(self._categorical), self.label is not None, self.label_dtype,
                          max((c for _, c in self._categorical), default=0)) if self.shuffle else None
        with contextlib.closing(self._chunks(self.shard(epoch), layout)) as chunks:
            if layout is not None:
                rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
                yield from self._shuffled(chunks, rng, layout)
            else:
                yield from self._sequential(chunks)

    def _chunks(self, units: list[RowGroup], layout: _Records | None = None) -> Iterator:
        """Read row groups in worker threads, ``num_workers + 1`` ahead, yielding in order
        (as shuffle-buffer records when ``layout`` is given: built in the reader thread too)."""
        read = self._read if layout is None else (lambda u: self._read(u, layout))
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="sluice-read") as pool:
            pending: deque = deque()
            it = iter(units)
            try:
                for u in it:
                    pending.append(pool.submit(read, u))
                    if len(pending) > self.num_workers:
                        break
                while pending:
                    chunk = pending.popleft().result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.append(pool.submit(read, nxt))
                    yield chunk
            finally:
                for f in pending:
                    f.cancel()

    def _read(self, unit: RowGroup, layout: _Records | None = None):
        """One row group -> column-stacked numpy matrices (the only copy is the stacking), or,
        with ``layout``, straight into shuffle-buffer records (again one copy)."""
        fs, inner = self._fs[unit.path]
        with fs.open_input_file(inner) as fh:
            table = pq.ParquetFile(fh, metadata=self._metadata[unit.path]).read_row_group(
                # One reader thread lets pyarrow decode columns in parallel; several already do.
                unit.index, columns=self._columns, use_threads=self.num_workers == 1
            )
        if unit.start is not None:
            table = table.slice(unit.start, unit.num_rows)
        where = f"{unit.path} row group {unit.index}"
        if layout is not None:
            return layout.from_table(table, self._numeric, self._categorical, self.label, where)
        dense, sparse = _stack(table, self._numeric, self._categorical, where)
        # A copy: pyarrow's zero-copy arrays are read-only, and torch wants writable memory.
        label = np.array(_column(table, self.label, where), dtype=self.label_dtype) if self.label else None
        return dense, sparse, label

    def _emit(self, dense: np.ndarray, sparse: np.ndarray, label: np.ndarray | None) -> Batch:
        return Batch(
            torch.from_numpy(dense),
            torch.from_numpy(sparse),
            None if label is None else torch.from_numpy(label),
        )

    def _sequential(self, chunks: Iterator[_Chunk]) -> Iterator[Batch]:
        """File order, no shuffling: slice chunks into batches, carrying the remainder over."""
        carry: _Chunk | None = None
        bs = self.batch_size
        for chunk in chunks:
            if carry is not None:
                chunk = _concat(carry, chunk)
                carry = None
            n = len(chunk[0])
            full = n - n % bs
            for s in range(0, full, bs):
                yield self._emit(*(None if a is None else a[s : s + bs] for a in chunk))
            if full < n:
                carry = tuple(None if a is None else a[full:] for a in chunk)  # type: ignore[assignment]
        if carry is not None and not self.drop_last:
            yield self._emit(*carry)

    def _shuffled(self, chunks: Iterator[np.ndarray], rng: np.random.Generator, layout: _Records) -> Iterator[Batch]:
        """Shuffle buffer: fill to capacity, then draw each batch uniformly from the buffer.

        The buffer holds rows as :class:`_Records` (one gather per draw, 4-byte words). The slots
        a draw frees are refilled with the next incoming rows, written straight into them, so a
        draw costs O(batch), not O(buffer). At the end the rest is permuted and drained.
        """
        cap, bs = self.shuffle_buffer, self.batch_size
        # Reuse the last epoch's buffer (fresh pages cost a page fault each); a concurrent
        # iteration finds none and allocates its own.
        buf, self._spare = self._spare, None
        if buf is None or buf.shape != (cap, layout.width) or buf.dtype != layout.word:
            buf = np.empty((cap, layout.width), layout.word)
        n = 0  # rows in the buffer during the first, contiguous fill
        free: np.ndarray | None = None  # slots emptied by the last draw, not yet refilled
        for rec in chunks:
            m, off = len(rec), 0
            while off < m:
                if free is None:
                    t = min(cap - n, m - off)
                    buf[n : n + t] = rec[off : off + t]
                    n += t
                    full = n == cap
                else:
                    t = min(len(free), m - off)
                    slots, free = free[:t], free[t:]
                    buf[slots] = rec[off : off + t]
                    full = not len(free)
                off += t
                if full:
                    idx = rng.choice(cap, bs, replace=False)
                    yield self._emit(*layout.split(np.take(buf, idx, axis=0)))
                    free = np.sort(idx)  # sorted: the refill writes memory in order
        valid = np.arange(n) if free is None else np.setdiff1d(np.arange(cap), free, assume_unique=True)
        order = rng.permutation(valid)
        stop = len(order) - len(order) % bs if self.drop_last else len(order)
        for s in range(0, stop, bs):
            yield self._emit(*layout.split(np.take(buf, order[s : s + bs], axis=0)))
        self._spare = buf  # batches are copies (np.take): nothing refers into the buffer


class _Records:
    """Rows as records of 4-byte words for the shuffle buffer: float32 features as their bits,
    ids and integer labels as int32, so a draw is one gather of whole rows (not three) moving
    half the bytes of int64 ids. 8-byte words when an id or label needs 64 bits."""

    def __init__(self, n_num: int, n_cat: int, has_label: bool, label_dtype: np.dtype, max_card: int) -> None:
        self.n_num, self.n_cat, self.has_label, self.label_dtype = n_num, n_cat, has_label, label_dtype
        self.narrow = max_card < 2**31 and (not has_label or label_dtype.itemsize == 4 or label_dtype == np.int64)
        self.word = np.int32 if self.narrow else np.int64
        self.width = n_num + n_cat + int(has_label)

    def _bits(self, a: np.ndarray) -> np.ndarray:
        return a.view(np.int32) if self.narrow else a.astype(np.float64).view(np.int64)

    def from_table(self, table, numeric: Sequence[str], categorical: Sequence[tuple[str, int]], label: str | None,
                   where: str) -> np.ndarray:
        """Records straight from Arrow columns (validated like :func:`_stack`), one copy."""
        rec = np.empty((table.num_rows, self.width), self.word)
        for j, name in enumerate(numeric):
            rec[:, j] = self._bits(np.asarray(_column(table, name, where), dtype=np.float32))
        for j, ids in enumerate(_checked_ids(table, categorical, where)):
            rec[:, self.n_num + j] = ids
        if label is not None:
            y = np.asarray(_column(table, label, where), dtype=self.label_dtype)
            rec[:, -1] = self._bits(y) if self.label_dtype == np.float32 else y
        return rec

    def split(self, rows: np.ndarray) -> _Chunk:
        def floats(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a).view(np.float32) if self.narrow else a.view(np.float64).astype(np.float32)

        label = None
        if self.has_label:
            lab = rows[:, -1]
            label = floats(lab) if self.label_dtype == np.float32 else lab.astype(self.label_dtype)
        return floats(rows[:, : self.n_num]), rows[:, self.n_num : self.n_num + self.n_cat].astype(np.int64), label


def feature_arrays(table, features: Sequence[FeatureSpec], where: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Model inputs from a table of transformed columns: dense float32 [N, n_numeric] and
    sparse int64 [N, n_categorical], in feature-spec order.

    Example::

        dense, sparse = feature_arrays(graph.apply(batch), specs)
    """
    numeric = [f.name for f in features if f.kind == "numeric"]
    categorical = [(f.name, int(f.cardinality)) for f in features if f.kind == "categorical"]
    return _stack(table, numeric, categorical, where)


def _stack(table, numeric: Sequence[str], categorical: Sequence[tuple[str, int]],
           where: str) -> tuple[np.ndarray, np.ndarray]:
    m = table.num_rows
    dense = np.empty((m, len(numeric)), dtype=np.float32)
    for j, name in enumerate(numeric):
        dense[:, j] = _column(table, name, where)
    sparse = np.empty((m, len(categorical)), dtype=np.int64)
    for j, ids in enumerate(_checked_ids(table, categorical, where)):
        sparse[:, j] = ids
    return dense, sparse


def _checked_ids(table, categorical: Sequence[tuple[str, int]], where: str) -> Iterator[np.ndarray]:
    """Each categorical column's ids, after checking they lie in ``[0, cardinality)``."""
    for name, card in categorical:
        ids = _column(table, name, where)
        if len(ids):
            lo, hi = int(ids.min()), int(ids.max())  # numpy: a serving request's few rows cost ~1 us
            if lo < 0 or hi >= card:
                raise ValueError(
                    f"{where}: categorical {name!r} has ids in [{lo}, {hi}], "
                    f"outside [0, {card}); the feature spec's cardinality does not match the data"
                )
        yield ids


def _column(table, name: str, where: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        raise ValueError(
            f"{where}: column {name!r} has {col.null_count} null values; the trainer needs "
            "model-ready columns (fill missing values in the transform)"
        )
    return col.to_numpy()


def _concat(a: _Chunk, b: _Chunk) -> _Chunk:
    return tuple(None if x is None else np.concatenate([x, y]) for x, y in zip(a, b))  # type: ignore[return-value]


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _expand(files: Sequence[str]) -> list[str]:
    """Paths as given; a directory stands for its ``*.parquet`` files, sorted, recursively."""
    if isinstance(files, str):
        files = [files]
    out: list[str] = []
    for path in files:
        fs, inner = _filesystem(path)
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(path)
        if info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
            names = sorted(f.path for f in found if f.is_file and f.path.endswith(".parquet"))
            prefix = path[: len(path) - len(inner)] if "://" in path else ""
            out += [prefix + p for p in names]
        else:
            out.append(path)
    return out
