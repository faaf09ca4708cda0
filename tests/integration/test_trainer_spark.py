"""Distributed training on the Spark engine through PySpark's TorchDistributor.

On the shared ``local[2]`` session torchrun starts the training processes from the driver
(TorchDistributor's local mode); on the standalone test cluster (``spark_cluster.py``) a real
barrier job starts them inside Spark tasks. Nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from sluice.train import TrainConfig, build_model, fit
from sluice.train.distributed import WorkerError
from tests.unit.ctr_data import make_ctr

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HPARAMS = {"hidden": (32, 16), "embedding_dim": 8}
CONFIG = dict(epochs=2, batch_size=256, learning_rate=4e-3, shuffle_buffer=4000, seed=0, workers=2)


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    return make_ctr(tmp_path_factory.mktemp("ctr"), rows=4000)


def _predict(model: nn.Module, path: str, features, label) -> torch.Tensor:
    from sluice.train.loader import ParquetBatchLoader

    batch = next(iter(ParquetBatchLoader([path], features, label, batch_size=500, shuffle=False)))
    with torch.inference_mode():
        return model.eval()(batch.dense, batch.sparse)


@pytest.fixture(scope="module", autouse=True)
def _models_by_value():
    """The test models below travel to the executors by value: they cannot import ``tests``."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class _KilledOnce(nn.Module):
    """Wraps a model; rank 1's process SIGKILLs itself at its ``after``-th training batch, once
    (``marker`` records it): a crash, as the OOM killer would cause."""

    def __init__(self, inner: nn.Module, marker: str, after: int) -> None:
        super().__init__()
        self.inner, self.marker, self.after, self.calls = inner, marker, after, 0

    def forward(self, dense, sparse):
        import torch.distributed as dist

        if self.training and dist.is_initialized() and dist.get_rank() == 1:
            self.calls += 1
            if self.calls == self.after and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(dense, sparse)


def test_two_workers_on_spark_train_as_on_the_local_engine_and_survive_a_kill(ctr, spark_session, tmp_path):
    from sluice.train.spark_distributor import fit_on_spark

    train, ev, features, label = ctr
    local_model = build_model("wide_and_deep", features, "binary", seed=0, **HPARAMS)
    local = fit(local_model, train, ev, features, label, "binary", TrainConfig(**CONFIG))

    # 1600 rows per rank in batches of 256: 7 steps per epoch, so the 9th batch is in epoch 1,
    # after the epoch-0 checkpoint.
    marker = tmp_path / "killed"
    model = _KilledOnce(build_model("wide_and_deep", features, "binary", seed=0, **HPARAMS), str(marker), 9)
    before = _predict(model, ev[0], features, label)
    epochs: list[tuple[int, float, float]] = []
    result = fit_on_spark(spark_session, model, train, ev, features, label, "binary",
                          TrainConfig(**CONFIG, checkpoint_dir=str(tmp_path / "ckpt")),
                          on_epoch=lambda e, m: epochs.append((e, m["eval_auc"], time.monotonic())))
    end = time.monotonic()

    assert marker.exists() and result.restarts == 1 and result.resumed_from == (1, 0)
    assert [e for e, _, _ in epochs] == [0, 1] and result.epochs_run == 2
    assert epochs[-1][1] == result.best_metrics["eval_auc"]
    assert end - epochs[0][2] > 5  # relayed live, in the first attempt, not after the restarted job
    assert result.best_metrics["eval_auc"] > 0.6
    assert abs(result.best_metrics["eval_auc"] - local.best_metrics["eval_auc"]) < 0.01
    after = _predict(model, ev[0], features, label)
    assert (after - before).abs().max() > 1e-3  # the driver's model holds the trained weights
    # the per-attempt reports and the pickled model the ranks loaded are gone
    assert not any(n.startswith((".spark-reports-", ".spark-model-")) for n in os.listdir(tmp_path / "ckpt"))


class _FailsOnRank1(nn.Module):
    """Raises in rank 1's first forward; rank 0 waits for it in the gradient all-reduce."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(1000, 1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, dense, sparse):
        import torch.distributed as dist

        if dist.get_rank() == 1:
            raise ValueError("boom from the model")
        return self.emb(sparse.clamp(max=999)).sum((1, 2)) + self.bias


def test_a_worker_that_raises_fails_the_run_without_retries(ctr, spark_session, tmp_path):
    from sluice.train.spark_distributor import fit_on_spark

    train, ev, features, label = ctr
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"rank 1 \(pid \d+ on .*\) failed: ValueError: boom from the model"):
        fit_on_spark(spark_session, _FailsOnRank1(), train, ev, features, label, "binary",
                     TrainConfig(**CONFIG, checkpoint_dir=str(tmp_path / "ckpt"), max_restarts=3))
    assert time.monotonic() - start < 90  # no hang on the rank waiting in a collective, and no retries
    assert not os.path.exists(tmp_path / "ckpt" / "checkpoint.pt")  # it failed in the first step


PIPELINE = '''
from sluice import Pipeline
from sluice.components import ExampleGen, Trainer, Transform
from examples.ctr.pipeline import ctr_data_generator, preprocessing_fn


def pipeline(rows: int = 3000, train: bool = True) -> Pipeline:
    data = ctr_data_generator(rows=rows, seed=0)
    gen = ExampleGen(input=data.outputs.data, key="user_id", splits={"train": 0.8, "eval": 0.2})
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
    trainer = Trainer(examples=transform.outputs.transformed_examples,
                      transform_graph=transform.outputs.transform_graph, label="label", model="wide_and_deep",
                      hparams={"hidden": [32, 16], "embedding_dim": 8}, epochs=2, batch_size=256,
                      learning_rate=4e-3, workers=2)
    return Pipeline("spark_ddp", [data, gen, transform] + ([trainer] if train else []))
'''


def test_trainer_with_two_workers_on_the_standalone_cluster(tmp_path, standalone_master):
    """``sluice run --engine spark --master spark://...``: the Trainer's two workers run as tasks on
    the cluster's two 1-core executors. The steps before it are computed by a local-engine run
    first and reused from the cache (the fingerprint does not include the engine), which saves
    about a minute of Spark jobs that other tests cover; the Trainer itself runs on Spark."""
    from sluice.metadata import MetadataStore

    (tmp_path / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("SLUICE_STORE", None)
    run = [sys.executable, "-m", "sluice.cli", "run", str(tmp_path / "pipeline.py"),
           "--store", str(tmp_path / "meta.db"), "--artifacts", str(tmp_path / "art")]
    for args in (["-p", "train=false"],
                 ["--engine", "spark", "--master", standalone_master, "--executor-memory", "768m",
                  "--spark-conf", "spark.executor.cores=1"]):
        out = subprocess.run([*run, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    store = MetadataStore.open(str(tmp_path / "meta.db"))
    spark_run = next(r for r in store.runs(pipeline="spark_ddp") if r.engine == "spark")
    assert {e.step: e.status for e in store.executions(spark_run.id)}["Trainer"] == "succeeded"  # not cached
    (model,) = store.artifacts(type="Model")
    props = model.properties
    assert props["workers"] == 2 and props["restarts"] == 0
    assert 0.6 < props["metrics"]["eval_auc"] < 0.95, props
    assert [m.step for m in store.metrics(spark_run.id, "eval_auc")] == [0, 1]  # every epoch reached the store
