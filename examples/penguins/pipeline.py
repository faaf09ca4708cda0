"""Penguin species classification, end to end: TFX's canonical penguin example in Sluice.

    sluice run examples/penguins/pipeline.py
    sluice run examples/penguins/pipeline.py --param epochs=30 --param seed=1

Three classes (Adelie, Chinstrap, Gentoo) from the Palmer Penguins measurements, island
and sex, with missing values. The pushed servable takes raw rows and answers species names.

``--param rows=N`` keeps a seeded sample of N rows. ``seed`` seeds the sample, the split
and the model; with a few seeds
both rows that lack every measurement land in the eval split, and the ExampleValidator
stops the run (the schema, inferred from train, calls those columns required): rerun with
``--param allow_anomalies=true`` or another seed.
"""

from __future__ import annotations

import numpy as np
import pyarrow.csv as pacsv

import sluice.transform as st
from examples.penguins import data as penguins_data
from sluice import Output, Pipeline, component
from sluice.components import (
    Evaluator, ExampleGen, ExampleValidator, Pusher, SchemaGen, StatisticsGen, Trainer, Transform,
)
from sluice.dsl import RawData
from sluice.evaluate import Threshold

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


@component
def penguins_raw_data(data: Output[RawData], rows: int = 0, seed: int = 0) -> None:
    """Write the Palmer Penguins CSV (344 rows); ``rows > 0`` keeps a seeded sample of ``rows``."""
    path = penguins_data.write(data.path)
    table = pacsv.read_csv(path)
    if 0 < rows < table.num_rows:  # a sample, not the head: the file is sorted by species
        keep = np.sort(np.random.default_rng(seed).permutation(table.num_rows)[:rows])
        table = table.take(keep)
        pacsv.write_csv(table, path)
    data.properties.update({"rows": table.num_rows, "summary": f"{table.num_rows} penguins"})


def preprocessing_fn(x: st.Inputs) -> dict[str, st.Feature]:
    features = {c: st.zscore(st.fill_missing(x[c])) for c in NUMERIC}  # missing -> the mean
    features.update({c: st.vocabulary(x[c], num_oov_buckets=1) for c in CATEGORICAL})  # missing -> OOV id
    features["species"] = st.vocabulary(x["species"], num_oov_buckets=0)  # the label: class ids 0..2
    return features


def pipeline(rows: int = 0, epochs: int = 20, seed: int = 0, serving_dir: str = "serving",
             min_accuracy: float = 0.9, allow_anomalies: bool = False) -> Pipeline:
    data = penguins_raw_data(rows=rows, seed=seed)
    gen = ExampleGen(input=data.outputs.data, splits={"train": 0.8, "eval": 0.2}, seed=seed)  # whole-row hash
    stats = StatisticsGen(examples=gen.outputs.examples)
    schema = SchemaGen(statistics=stats.outputs.statistics)
    validator = ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema,
                                 allow_anomalies=allow_anomalies)
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn,
                          anomalies=validator.outputs.anomalies)
    trainer = Trainer(examples=transform.outputs.transformed_examples,
                      transform_graph=transform.outputs.transform_graph, label="species", task="multiclass",
                      model="mlp", hparams={"hidden": [16, 8]}, epochs=epochs, batch_size=32,
                      learning_rate=5e-3, seed=seed)
    evaluator = Evaluator(model=trainer.outputs.model, examples=gen.outputs.examples,
                          transform_graph=transform.outputs.transform_graph, label="species",
                          slices=["island"], thresholds={"accuracy": Threshold(lower_bound=min_accuracy)})
    pusher = Pusher(model=trainer.outputs.model, transform=transform.outputs.transform_graph,
                    blessing=evaluator.outputs.blessing, schema=schema.outputs.schema,
                    destination=serving_dir, model_name="penguins")
    return Pipeline("penguins", [data, gen, stats, schema, validator, transform, trainer, evaluator, pusher])


def report(result, serving_dir: str = "serving", **_: object) -> None:
    """Print the eval accuracy, the blessing, and where the servable went."""
    metrics = result.output("Evaluator", "evaluation").properties["metrics"]
    pushed = result.output("Pusher", "pushed_model").properties
    print(f"\naccuracy         {metrics['accuracy']:.4f}   (eval split)")
    print(f"blessing         {result.output('Evaluator', 'blessing').properties['summary']}")
    print(f"artifacts        .sluice/artifacts/penguins/   (sluice show {result.run_id[:12]})")
    if pushed.get("pushed"):
        print(f"pushed           {pushed['path']}")
        print(f"serve it with    sluice serve --model-dir {serving_dir}")
