"""The Trainer component with two DDP worker processes inside a real pipeline run: per-epoch
throughput metrics and the restart count reach the metadata store, and no checkpoint is left."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sluice import Pipeline
from sluice.components import ExampleGen, Trainer, Transform

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from examples.ctr.pipeline import ctr_data_generator, preprocessing_fn  # noqa: E402

pytestmark = pytest.mark.slow


def test_trainer_with_two_workers_logs_throughput(workdir, make_runner):
    data = ctr_data_generator(rows=20_000, seed=0)
    gen = ExampleGen(input=data.outputs.data, key="user_id", splits={"train": 0.8, "eval": 0.2})
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
    trainer = Trainer(examples=transform.outputs.transformed_examples,
                      transform_graph=transform.outputs.transform_graph, label="label", model="deepfm",
                      hparams={"embedding_dim": 8, "hidden": [32]}, epochs=2, batch_size=256,
                      learning_rate=1e-2, workers=2, checkpoint_every_steps=3, lr_schedule="cosine")
    result = make_runner().run(Pipeline("ddp", [data, gen, transform, trainer]))
    assert result.status == "succeeded", {n: s.error for n, s in result.steps.items() if s.error}

    model = result.output("Trainer", "model").properties
    assert model["workers"] == 2 and model["restarts"] == 0
    assert model["metrics"]["eval_auc"] > 0.65
    store = make_runner().store
    series = {name: [m.value for m in store.metrics(result.run_id, name)]
              for name in ("samples_per_sec", "data_wait_fraction", "eval_auc", "lr", "restarts")}
    assert len(series["samples_per_sec"]) == 2 and min(series["samples_per_sec"]) > 0
    assert len(series["data_wait_fraction"]) == 2 and all(0 <= v < 1 for v in series["data_wait_fraction"])
    assert len(series["eval_auc"]) == 2
    assert series["lr"][-1] == pytest.approx(0.0, abs=1e-9)  # cosine schedule ends at 0
    assert series["restarts"] == [0]
    checkpoints = workdir / ".sluice" / "artifacts" / ".checkpoints" / "ddp" / "Trainer"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # deleted once the model was saved
    assert not any(n.startswith("checkpoint") for _, _, files in os.walk(workdir) for n in files)
