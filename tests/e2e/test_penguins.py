"""End to end: the penguins example (examples/penguins/pipeline.py) trains, blesses, pushes and serves."""

from __future__ import annotations

import os
import shutil

import pytest

from sluice.registry.servable import Servable
from sluice.runner.pipeline_file import load_pipeline

pytest.importorskip("palmerpenguins")

PIPELINE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "penguins", "pipeline.py")
STEPS = ["penguins_raw_data", "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
         "Trainer", "Evaluator", "Pusher"]

# Typical members of each species (rows of the data set), far from the class boundaries.
ROWS = [
    ({"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
      "body_mass_g": 3750, "sex": "male"}, "Adelie"),
    ({"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192,
      "body_mass_g": 3500, "sex": "female"}, "Chinstrap"),
    ({"island": "Biscoe", "bill_length_mm": 46.1, "bill_depth_mm": 13.2, "flipper_length_mm": 211,
      "body_mass_g": 4500, "sex": None}, "Gentoo"),  # a missing sex, as in the data
]


@pytest.mark.slow
def test_penguins_pipeline_trains_blesses_pushes_and_serves(make_runner) -> None:
    pipeline, params, module = load_pipeline(PIPELINE)
    result = make_runner().run(pipeline, params)

    assert result.status == "succeeded", [(s.name, s.error) for s in result.failed]
    assert {name: step.state for name, step in result.steps.items()} == dict.fromkeys(STEPS, "succeeded")
    metrics = result.output("Evaluator", "evaluation").properties["metrics"]
    assert metrics["accuracy"] >= 0.97, metrics
    assert result.output("Evaluator", "blessing").properties["blessed"] is True
    pushed = result.output("Pusher", "pushed_model").properties
    assert pushed["pushed"] and pushed["version"] == 1

    servable = Servable.load(pushed["path"])
    assert servable.signature.classes is not None
    assert sorted(servable.signature.classes) == ["Adelie", "Chinstrap", "Gentoo"]
    predictions = servable.predict_rows([row for row, _ in ROWS])
    assert [p["class"] for p in predictions] == [species for _, species in ROWS], predictions
    for p in predictions:
        assert len(p["probabilities"]) == 3 and abs(sum(p["probabilities"]) - 1) < 1e-3

    module.report(result, **params)  # the CLI summary must not break on a real result

    again = make_runner().run(load_pipeline(PIPELINE)[0], params)
    assert again.status == "succeeded"
    assert {name: step.state for name, step in again.steps.items()} == dict.fromkeys(STEPS, "cached")

    # A cached push is honest: with the version folder gone, the run pushes again, as v2.
    shutil.rmtree(pushed["path"])
    third = make_runner().run(load_pipeline(PIPELINE)[0], params)
    assert third.steps["Pusher"].state == "succeeded"
    assert {n: s.state for n, s in third.steps.items() if n != "Pusher"} == \
        dict.fromkeys([s for s in STEPS if s != "Pusher"], "cached")
    repushed = third.output("Pusher", "pushed_model").properties
    assert repushed["version"] == 2 and os.path.isfile(os.path.join(repushed["path"], "signature.json"))
