"""The release gate across runs: a worse model than the last blessed one is not blessed and not
pushed, with the reason written; a forced blessing is recorded as forced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sluice.components import Evaluator, Pusher
from sluice.dsl import Pipeline
from sluice.evaluate import Threshold
from sluice.runner.pipeline_file import load_pipeline

pytestmark = pytest.mark.slow

PIPELINE = str(Path(__file__).resolve().parents[2] / "examples" / "ctr" / "pipeline.py")


def _ctr(epochs: int, serving: str) -> tuple[Pipeline, dict]:
    pipeline, params, _ = load_pipeline(PIPELINE, {"rows": "20000", "epochs": str(epochs), "serving_dir": serving})
    return pipeline, params


def _forced(pipeline: Pipeline) -> Pipeline:
    """The same pipeline with the Evaluator forced to bless."""
    steps = list(pipeline.components)
    old = pipeline.step("Evaluator")
    forced = Evaluator(model=old.inputs["model"], examples=old.inputs["examples"],
                       transform_graph=old.inputs["transform_graph"], slices=old.params["slices"],
                       thresholds=old.params["thresholds"], force_bless=True)
    pusher = pipeline.step("Pusher")
    new_pusher = Pusher(model=pusher.inputs["model"], transform=pusher.inputs["transform"],
                        blessing=forced.outputs.blessing, schema=pusher.inputs["schema"],
                        destination=pusher.params["destination"], model_name="ctr")
    steps[steps.index(old)], steps[steps.index(pusher)] = forced, new_pusher
    return Pipeline(pipeline.name, steps)


def test_worse_model_is_held_back_and_a_forced_blessing_is_recorded(make_runner, workdir):
    serving = str(workdir / "serving")
    runner = make_runner()
    first = runner.run(*_ctr(2, serving))
    assert first.status == "succeeded"
    assert first.output("Evaluator", "blessing").properties["blessed"] is True
    assert first.output("Pusher", "pushed_model").properties["version"] == 1
    good_auc = first.output("Evaluator", "evaluation").properties["metrics"]["auc"]

    worse = runner.run(*_ctr(1, serving))  # one epoch: a clearly weaker model
    assert worse.status == "succeeded"
    evaluation = worse.output("Evaluator", "evaluation")
    blessing = worse.output("Evaluator", "blessing")
    assert evaluation.properties["baseline_model"] == first.output("Trainer", "model").id
    assert evaluation.properties["metrics"]["auc"] < good_auc - 0.01
    assert blessing.properties["blessed"] is False
    assert blessing.properties["summary"].startswith("NOT BLESSED")
    assert any("baseline" in reason for reason in blessing.properties["reasons"])
    with open(os.path.join(blessing.uri, "blessing.json")) as f:
        saved = json.load(f)
    assert saved["baseline_metrics"]["auc"] == pytest.approx(good_auc, abs=1e-9)  # re-scored, same data
    pushed = worse.output("Pusher", "pushed_model").properties
    assert pushed["pushed"] is False and "not pushed" in pushed["summary"]
    assert sorted(os.listdir(os.path.join(serving, "ctr"))) == ["1"]

    pipeline, params = _ctr(1, serving)
    forced = runner.run(_forced(pipeline), params)
    blessing = forced.output("Evaluator", "blessing").properties
    assert blessing["blessed"] is True and blessing["forced"] is True
    assert "FORCED" in blessing["summary"]
    assert forced.output("Pusher", "pushed_model").properties["version"] == 2
