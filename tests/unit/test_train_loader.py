"""ParquetBatchLoader: every row once per epoch, seeded shuffling, sharding by rank, dtypes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sluice.features import FeatureSpec
from sluice.train import ParquetBatchLoader

CARD = 7
FEATURES = [
    FeatureSpec("rid", "numeric"),
    FeatureSpec("twice", "numeric"),
    FeatureSpec("mod", "categorical", CARD),
]
# (rows, row group size) per file: uneven on purpose, so batches straddle row groups and files.
SHARDS = [(1000, 128), (700, 100), (333, 50)]
N = sum(r for r, _ in SHARDS)


def _write_shards(directory) -> list[str]:
    files, start = [], 0
    for i, (rows, rg) in enumerate(SHARDS):
        rid = np.arange(start, start + rows)
        table = pa.table({
            "rid": rid.astype(np.float64),  # the loader casts numeric columns to float32
            "twice": (2 * rid).astype(np.float32),
            "mod": (rid % CARD).astype(np.int32),
            "y": (rid % 3).astype(np.int64),
            "unused": np.zeros(rows),
        })
        path = directory / f"part-{i}.parquet"
        pq.write_table(table, path, row_group_size=rg)
        files.append(str(path))
        start += rows
    return files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    return _write_shards(tmp_path_factory.mktemp("shards"))


def _loader(files, **kw) -> ParquetBatchLoader:
    kw.setdefault("batch_size", 64)
    kw.setdefault("shuffle_buffer", 300)
    return ParquetBatchLoader(files, FEATURES, "y", **kw)


def _rids(loader) -> np.ndarray:
    return np.concatenate([b.dense[:, 0].numpy() for b in loader]).astype(np.int64)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("prefetch", [0, 3])
def test_every_row_exactly_once_and_rows_stay_whole(files, shuffle, prefetch):
    loader = _loader(files, shuffle=shuffle, prefetch=prefetch)
    for _ in range(2):
        batches = list(loader)
        rid = np.concatenate([b.dense[:, 0].numpy() for b in batches]).astype(np.int64)
        assert np.array_equal(np.sort(rid), np.arange(N))
        # Columns of one row travel together through the shuffle buffer.
        for b in batches:
            r = b.dense[:, 0].long()
            assert torch.equal(b.dense[:, 1], (2 * r).float())
            assert torch.equal(b.sparse[:, 0], r % CARD)
            assert torch.equal(b.label, (r % 3).float())
    if not shuffle:
        assert np.array_equal(_rids(loader), np.arange(N))


def test_shuffle_differs_between_epochs_and_repeats_under_seed(files):
    a, b, c = _loader(files, seed=1), _loader(files, seed=1), _loader(files, seed=2)
    a0, a1 = _rids(a), _rids(a)  # iterating again advances the epoch
    b.set_epoch(0)
    b0 = _rids(b)
    b.set_epoch(1)
    b1 = _rids(b)
    assert not np.array_equal(a0, a1)
    assert np.array_equal(a0, b0) and np.array_equal(a1, b1)
    assert not np.array_equal(a0, _rids(c))
    # Rows really mix across row groups and files, not just within them.
    first = a0[:64]
    assert len(np.unique(first // 128)) > 2
    # Determinism does not depend on reader threads or prefetching.
    assert np.array_equal(a0, _rids(_loader(files, seed=1, num_workers=3, prefetch=0)))


@pytest.mark.parametrize("shuffle", [True, False])
def test_drop_last(files, shuffle):
    bs = 100
    kept = list(_loader(files, shuffle=shuffle, batch_size=bs, drop_last=True))
    assert [len(b) for b in kept] == [bs] * (N // bs)
    full = _loader(files, shuffle=shuffle, batch_size=bs)
    assert len(full) == -(-N // bs)
    sizes = [len(b) for b in full]
    assert sizes == [bs] * (N // bs) + [N % bs]


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_partition_row_groups(files, shuffle):
    world = 3
    loaders = [_loader(files, shuffle=shuffle, rank=r, world_size=world) for r in range(world)]
    for epoch in (0, 1):
        shards = [ld.shard(epoch) for ld in loaders]
        units = [(u.path, u.index) for s in shards for u in s]
        assert len(units) == len(set(units)) == sum(-(-rows // rg) for rows, rg in SHARDS)
        for ld in loaders:
            ld.set_epoch(epoch)
        rid = np.concatenate([_rids(ld) for ld in loaders])
        assert np.array_equal(np.sort(rid), np.arange(N))
    with pytest.raises(ValueError):
        _loader(files, rank=3, world_size=3)


def test_batch_dtypes_and_shapes(files):
    b = next(iter(_loader(files, batch_size=32)))
    assert b.dense.dtype == torch.float32 and tuple(b.dense.shape) == (32, 2)
    assert b.sparse.dtype == torch.int64 and tuple(b.sparse.shape) == (32, 1)
    assert b.label.dtype == torch.float32 and tuple(b.label.shape) == (32,)
    b = next(iter(_loader(files, batch_size=32, label_dtype="int64")))
    assert b.label.dtype == torch.int64
    b = next(iter(ParquetBatchLoader(files, FEATURES[:1], None, batch_size=8)))
    assert b.label is None and tuple(b.sparse.shape) == (8, 0)


def test_directory_input_and_early_break(files):
    loader = _loader([files[0].rsplit("/", 1)[0]])
    assert loader.num_rows == N
    it = iter(loader)
    next(it)
    it.close()  # the background thread must stop, not hang


def test_bad_data_fails_loudly(tmp_path):
    bad_ids = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"rid": [0.0, 1.0], "twice": [0.0, 2.0], "mod": [0, CARD], "y": [0, 1]}), bad_ids)
    with pytest.raises(ValueError, match="outside"):
        list(_loader([str(bad_ids)]))
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"rid": [0.0, None], "twice": [0.0, 2.0], "mod": [0, 1], "y": [0, 1]}), nulls)
    with pytest.raises(ValueError, match="null"):
        list(_loader([str(nulls)]))
    with pytest.raises(ValueError, match="missing columns"):
        ParquetBatchLoader([str(nulls)], [FeatureSpec("nope", "numeric")], "y")


def test_import_does_not_load_torch():
    code = "import sys, sluice.train; assert 'torch' not in sys.modules, 'torch imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)
