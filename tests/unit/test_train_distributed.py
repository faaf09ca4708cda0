"""Data-parallel training in real worker processes, checkpoints, and recovery from a SIGKILL.

Every test here starts real processes (torch.distributed over gloo on 127.0.0.1) and kills
them for real; nothing is mocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from torch import nn

from sluice.train import TrainConfig, build_model, fit
from sluice.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from sluice.train.distributed import WorkerError
from tests.unit.ctr_data import make_ctr

HPARAMS = {"hidden": (32, 16), "embedding_dim": 8}
CONFIG = dict(epochs=2, batch_size=512, learning_rate=4e-3, shuffle_buffer=4000, seed=0)
HALF = CONFIG["batch_size"] // 2  # per worker with two workers: the same global batch as one worker


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    return make_ctr(tmp_path_factory.mktemp("ctr"), rows=30_000)


def _fit(ctr, workers, **config):
    train, ev, features, label = ctr
    model = build_model("wide_and_deep", features, "binary", seed=0, **HPARAMS)
    epochs: list[int] = []
    result = fit(model, train, ev, features, label, "binary", TrainConfig(**{**CONFIG, **config}),
                 on_epoch=lambda e, m: epochs.append(e), workers=workers)
    return result, epochs


@pytest.fixture(scope="module")
def two_workers(ctr):
    return _fit(ctr, 2, batch_size=HALF)


def test_two_workers_reach_the_auc_of_one(ctr, two_workers):
    """Two workers at half the batch each take the same steps on the same global batch as one."""
    one, _ = _fit(ctr, 1)
    two, epochs = two_workers
    assert epochs == [0, 1]  # rank 0's epochs relayed once each to the caller's process
    assert one.best_metrics["eval_auc"] > 0.70
    assert abs(two.best_metrics["eval_auc"] - one.best_metrics["eval_auc"]) < 0.01
    for m in two.history:
        assert m["samples_per_sec"] > 0 and 0 <= m["data_wait_fraction"] < 1
    # The other way to sync embeddings: dense gradients all-reduced by DDP, dense Adam.
    dense, _ = _fit(ctr, 2, batch_size=HALF, ddp_sparse_embeddings=False)
    assert abs(dense.best_metrics["eval_auc"] - one.best_metrics["eval_auc"]) < 0.01


class _FailsOnRank1(nn.Module):
    """Raises in rank 1's first forward; rank 0 would go on."""

    def __init__(self, n_sparse: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, dense, sparse):
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() == 1:
            raise ValueError("boom from the model")
        return self.emb(sparse.clamp(max=999)).sum((1, 2)) + self.bias


class _SparseTablesOnly(nn.Module):
    """Nothing but sparse embedding tables: no DDP around it, the row exchange syncs all of it."""

    def __init__(self, features) -> None:
        super().__init__()
        cards = [f.cardinality for f in features if f.kind == "categorical"]
        self.tables = nn.ModuleList(nn.Embedding(c, 1, sparse=True) for c in cards)
        for t in self.tables:
            nn.init.zeros_(t.weight)  # a linear model over ids

    def forward(self, dense, sparse):
        return sum(t(sparse[:, i]).squeeze(1) for i, t in enumerate(self.tables))


def test_a_model_of_sparse_tables_only_trains_on_two_workers_with_accumulation(ctr):
    train, ev, features, label = ctr
    one = fit(_SparseTablesOnly(features), train, ev, features, label, "binary", TrainConfig(**CONFIG))
    config = TrainConfig(**{**CONFIG, "batch_size": HALF // 2, "grad_accumulation": 2})  # 2 x 2 x 128 = 512
    two = fit(_SparseTablesOnly(features), train, ev, features, label, "binary", config, workers=2)
    assert one.best_metrics["eval_auc"] > 0.65
    assert abs(two.best_metrics["eval_auc"] - one.best_metrics["eval_auc"]) < 0.01


def test_a_failing_worker_is_named(ctr):
    train, ev, features, label = ctr
    model = _FailsOnRank1(len(features))
    with pytest.raises(WorkerError, match=r"rank 1 \(pid \d+\) failed: ValueError: boom from the model"):
        fit(model, train, ev, features, label, "binary", TrainConfig(**CONFIG), workers=2)


def _worker_pids() -> list[int]:
    """This process's multiprocessing-spawned children, minus the resource tracker."""
    pids = []
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{tid}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
        except FileNotFoundError:  # the thread ended between listdir and open
            continue
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ")
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            out.append(pid)
    return out


def test_sigkilled_worker_restarts_from_checkpoint_with_the_same_auc(ctr, two_workers, tmp_path):
    ckpt = tmp_path / "ckpt"
    box: dict = {}

    def run():
        try:
            box["result"] = _fit(ctr, 2, batch_size=HALF, checkpoint_dir=str(ckpt), checkpoint_every_steps=5)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(checkpoint_path(str(ckpt))):  # mid-training, after the first checkpoint
            assert time.monotonic() < deadline and thread.is_alive(), box
            time.sleep(0.05)
        pids = _worker_pids()
        assert len(pids) == 2, pids
        os.kill(pids[1], signal.SIGKILL)
    finally:
        thread.join(300)
    assert "error" not in box, box.get("error")
    result, epochs = box["result"]
    assert result.restarts == 1
    assert result.resumed_from is not None and result.resumed_from != (0, 0)  # the restart resumed mid-run
    assert epochs == [0, 1]
    assert abs(result.best_metrics["eval_auc"] - two_workers[0].best_metrics["eval_auc"]) < 0.005
    assert _worker_pids() == []


class _KillsItself(nn.Module):
    """Rank 1 SIGKILLs its own process on its third batch, every time it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, dense, sparse):
        import torch.distributed as dist

        self.calls += 1
        if dist.get_rank() == 1 and self.calls == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return dense[:, 0] * 0 + self.bias


def test_restarts_are_bounded(ctr):
    train, ev, features, label = ctr
    with pytest.raises(WorkerError, match=r"rank 1 \(pid \d+\) was killed by signal 9; gave up after 1 restart"):
        fit(_KillsItself(), train, ev, features, label, "binary",
            TrainConfig(**{**CONFIG, "max_restarts": 1}), workers=2)
    assert _worker_pids() == []


def test_single_process_resumes_mid_epoch_after_a_crash_to_the_same_model(ctr, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    plain, _ = _fit(ctr, 1, epochs=3)

    def crash(epoch, metrics):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash after epoch 1")

    train, ev, features, label = ctr
    model = build_model("wide_and_deep", features, "binary", seed=0, **HPARAMS)
    config = TrainConfig(**{**CONFIG, "epochs": 3, "checkpoint_dir": ckpt, "checkpoint_every_steps": 7})
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, ev, features, label, "binary", config, on_epoch=crash)
    # The crash came while epoch 1 was reported, before its end-of-epoch checkpoint: the last
    # one is mid-epoch 1 (every 7 steps), so the resumed run replays the loader to that batch.
    written = torch.load(checkpoint_path(ckpt), weights_only=False)
    position = (written["state"].epoch, written["state"].step)
    assert position[0] == 1 and position[1] > 0
    seen: list[int] = []
    model = build_model("wide_and_deep", features, "binary", seed=0, **HPARAMS)
    resumed = fit(model, train, ev, features, label, "binary", config, on_epoch=lambda e, m: seen.append(e))
    assert resumed.resumed_from == position
    assert seen == [0, 1, 2]  # the checkpoint's epoch is reported again, then the new ones
    assert resumed.best_metrics["eval_auc"] == pytest.approx(plain.best_metrics["eval_auc"], abs=1e-6)
    # A changed config is another job: its checkpoint is not resumed.
    other = fit(build_model("wide_and_deep", features, "binary", seed=0, **HPARAMS), train, ev, features, label,
                "binary", TrainConfig(**{**CONFIG, "epochs": 1, "checkpoint_dir": ckpt}))
    assert other.resumed_from is None


_WRITER = """
import sys, torch
from sluice.train.checkpoint import save_checkpoint
save_checkpoint(sys.argv[1], {"fingerprint": "new", "blob": torch.zeros(150_000_000, dtype=torch.uint8)})
"""


def test_a_crash_mid_write_leaves_the_previous_checkpoint(tmp_path):
    directory = str(tmp_path)
    save_checkpoint(directory, {"fingerprint": "old", "value": 1})
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, directory])
    try:
        deadline = time.monotonic() + 60
        while not any(n.endswith(".tmp") and os.path.getsize(os.path.join(directory, n)) > 0
                      for n in os.listdir(directory)):
            assert time.monotonic() < deadline and proc.poll() is None, "writer finished before it could be killed"
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(directory, "new") is None
    assert load_checkpoint(directory, "old")["value"] == 1
    assert os.listdir(directory) == ["checkpoint.pt"]  # the partial temp file was cleaned up


def test_few_row_groups_are_sliced_evenly_between_ranks(tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sluice.features import FeatureSpec
    from sluice.train import ParquetBatchLoader

    path = str(tmp_path / "one.parquet")
    pq.write_table(pa.table({"x": np.arange(1001, dtype=np.float32), "y": np.zeros(1001, np.float32)}), path)
    specs = [FeatureSpec("x", "numeric")]
    seen = []
    for rank in range(2):
        loader = ParquetBatchLoader([path], specs, "y", batch_size=100, rank=rank, world_size=2,
                                    shuffle_buffer=100)
        assert loader.slices_row_groups and loader.rows_per_rank(0) == [500, 501]
        seen.append(np.concatenate([b.dense[:, 0].numpy() for b in loader]))
    assert sorted(map(len, seen)) == [500, 501]
    assert sorted(np.concatenate(seen).tolist()) == list(range(1001))  # every row once, no overlap
