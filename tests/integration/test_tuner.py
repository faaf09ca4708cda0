"""The Tuner component in a real pipeline: trials recorded in the metadata store and trials.json,
best values inside the search space, and a Trainer wired to them trains with them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sluice import Pipeline
from sluice.components import ExampleGen, Trainer, Transform, Tuner
from sluice.train import read_model_spec
from sluice.train.tuning import in_space

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from examples.ctr.pipeline import ctr_data_generator, preprocessing_fn  # noqa: E402

SPACE = {"learning_rate": ("log_float", 1e-3, 1e-2), "hidden": ("categorical", [[32], [64, 32]]),
         "epochs": ("int", 1, 2)}


def test_tuner_feeds_the_trainer(workdir, make_runner):
    data = ctr_data_generator(rows=20_000, seed=0)
    gen = ExampleGen(input=data.outputs.data, key="user_id", splits={"train": 0.8, "eval": 0.2})
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
    common = dict(examples=transform.outputs.transformed_examples, transform_graph=transform.outputs.transform_graph,
                  model="mlp", hparams={"embedding_dim": 8}, batch_size=1024)
    tuner = Tuner(search_space=SPACE, trials=3, metric="eval_auc", direction="maximize", seed=0, **common)
    trainer = Trainer(hyperparameters=tuner.outputs.best_hyperparameters, learning_rate=0.5, epochs=5,
                      **common)
    runner = make_runner()
    result = runner.run(Pipeline("tune", [data, gen, transform, tuner, trainer]))
    assert result.status == "succeeded", {n: s.error for n, s in result.steps.items() if s.error}

    best = result.output("Tuner", "best_hyperparameters")
    doc = json.loads(Path(best.file("hyperparameters.json")).read_text())
    trials = json.loads(Path(best.file("trials.json")).read_text())
    assert in_space(doc["values"], SPACE) and best.properties["values"] == doc["values"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(in_space(t["params"], SPACE) and t["state"] in ("complete", "pruned") for t in trials)
    assert doc["best_value"] == max(t["value"] for t in trials if t["state"] == "complete")

    # every trial is a metric point of the Tuner's execution, step = trial number
    store = runner.store
    tuner_ex = next(e for e in store.executions(result.run_id) if e.step == "Tuner")
    points = [m for m in store.metrics(result.run_id) if m.execution_id == tuner_ex.id]
    by_name = {}
    for m in points:
        by_name.setdefault(m.name, []).append((m.step, m.value))
    assert [s for s, _ in by_name["trial_state"]] == [0, 1, 2]
    assert [v for _, v in by_name["trial_state"]] == [1.0 if t["state"] == "complete" else 0.0 for t in trials]
    assert [v for _, v in by_name["param.learning_rate"]] == pytest.approx([t["params"]["learning_rate"]
                                                                            for t in trials])
    assert [v for _, v in by_name["trial_value"]] == pytest.approx([t["value"] for t in trials])

    # the Trainer used the tuned values, not its own learning_rate=0.5 / epochs=5 / hidden
    model = result.output("Trainer", "model").properties
    assert model["hyperparameters"] == doc["values"]
    spec = read_model_spec(result.output("Trainer", "model").path)
    assert spec["hparams"]["hidden"] == doc["values"]["hidden"] and spec["hparams"]["embedding_dim"] == 8
    trainer_ex = next(e for e in store.executions(result.run_id) if e.step == "Trainer")
    mine = {m.name: [] for m in store.metrics(result.run_id) if m.execution_id == trainer_ex.id}
    for m in store.metrics(result.run_id):
        if m.execution_id == trainer_ex.id:
            mine[m.name].append(m.value)
    assert len(mine["eval_auc"]) == doc["values"]["epochs"]
    assert mine["hp.learning_rate"] == pytest.approx([doc["values"]["learning_rate"]])
    assert mine["lr"][-1] == pytest.approx(doc["values"]["learning_rate"])
    assert model["metrics"]["eval_auc"] > 0.6


def test_bad_tuner_settings_fail_when_the_pipeline_is_declared():
    data = ctr_data_generator(rows=100)
    gen = ExampleGen(input=data.outputs.data, key="user_id")
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
    kw = dict(examples=transform.outputs.transformed_examples, transform_graph=transform.outputs.transform_graph)
    with pytest.raises(ValueError, match=r"search_space\['lr'\]: unknown kind 'uniform'; expected one of"):
        Tuner(search_space={"lr": ("uniform", 0.1, 1)}, **kw)
    with pytest.raises(ValueError, match="Tuner direction must be 'maximize' or 'minimize', got 'max'"):
        Tuner(search_space=SPACE, direction="max", **kw)
    with pytest.raises(ValueError, match="Tuner trials must be a positive integer, got 0"):
        Tuner(search_space=SPACE, trials=0, **kw)


@pytest.mark.parametrize("step", ["Tuner", "Trainer"])
def test_a_label_the_transform_does_not_output_is_named(workdir, make_runner, step):
    data = ctr_data_generator(rows=2_000, seed=0)
    gen = ExampleGen(input=data.outputs.data, key="user_id", splits={"train": 0.8, "eval": 0.2})
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
    kw = dict(examples=transform.outputs.transformed_examples, transform_graph=transform.outputs.transform_graph,
              label="clicked", model="mlp", epochs=1)
    last = Tuner(search_space=SPACE, trials=1, **kw) if step == "Tuner" else Trainer(**kw)
    result = make_runner().run(Pipeline("bad-label", [data, gen, transform, last]))
    assert result.status == "failed"
    assert f"{step}: label 'clicked' is not a transform output; outputs are: I1, I1_q" in result.steps[step].error
