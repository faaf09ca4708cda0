"""Click-through-rate prediction, end to end, with every standard component.

    sluice run examples/ctr/pipeline.py --param rows=1000000

The data comes from a seeded generator with a known click probability, so the
best AUC any model could reach (the Bayes-optimal AUC) is printed beside the
model's own.
"""

from __future__ import annotations

import sluice.transform as st
from examples.ctr import data as ctr_data
from sluice import Output, Pipeline, component
from sluice.components import (
    Evaluator, ExampleGen, ExampleValidator, Pusher, SchemaGen, StatisticsGen, Trainer, Transform,
)
from sluice.dsl import RawData
from sluice.evaluate import Threshold

NUMERIC = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
# Feature crosses a domain expert would try (the generator's truth has pairwise effects).
CROSSES = [("C10", "C14"), ("C17", "C21"), ("C1", "C20")]
# Counts whose effect may differ by category: their quantile bucket crossed with the category.
NUMERIC_CROSSES = [("I7", "C25"), ("I8", "C6")]
# A value seen fewer times than this in the training split shares the out-of-vocabulary id: an
# embedding fitted to a handful of rows is mostly noise (at 1M rows this was worth 0.002-0.003 AUC).
MIN_COUNT = 100


@component
def ctr_data_generator(data: Output[RawData], rows: int = 100_000, seed: int = 0) -> None:
    """Write `rows` rows of synthetic click logs as Parquet, and record the Bayes-optimal AUC."""
    files = ctr_data.write(data.path, rows, seed)
    data.properties.update({"rows": rows, "files": len(files),
                            "bayes_optimal_auc": round(ctr_data.bayes_optimal_auc(seed=seed), 4),
                            "summary": f"{rows:,} rows"})


def preprocessing_fn(x: st.Inputs) -> dict[str, st.Feature]:
    features: dict[str, st.Feature] = {}
    for c in NUMERIC:
        counts = st.log1p(st.clip(st.fill_missing(x[c], 0), 0, None))
        features[c] = st.zscore(counts)
        features[f"{c}_q"] = st.bucketize(counts, num_buckets=32)  # lets the model bend the curve
    for c in CATEGORICAL:
        features[c] = st.vocabulary(x[c], top_k=20_000, num_oov_buckets=1, frequency_threshold=MIN_COUNT)
    for a, b in CROSSES:
        features[f"{a}_x_{b}"] = st.feature_cross([x[a], x[b]], hash_buckets=50_000)
    for n, c in NUMERIC_CROSSES:
        features[f"{n}_x_{c}"] = st.feature_cross([features[f"{n}_q"], x[c]], hash_buckets=5_000)
    features["label"] = st.passthrough(x["label"])
    return features


def pipeline(rows: int = 100_000, seed: int = 0, epochs: int = 2, model: str = "wide_and_deep",
             serving_dir: str = "serving", allow_anomalies: bool = False) -> Pipeline:
    data = ctr_data_generator(rows=rows, seed=seed)
    gen = ExampleGen(input=data.outputs.data, key="user_id", splits={"train": 0.8, "eval": 0.2})
    stats = StatisticsGen(examples=gen.outputs.examples)
    schema = SchemaGen(statistics=stats.outputs.statistics)
    validator = ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema,
                                 allow_anomalies=allow_anomalies)
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn,
                          anomalies=validator.outputs.anomalies)
    # Batch 2048 and 4-wide embeddings: the crosses' and rare values' embeddings need steps, and
    # wider ones overfit by the second epoch; at 1M rows batch 8192 with 16-wide embeddings was
    # 0.005 AUC lower and 1.8x slower (benchmarks/RESULTS.md, quality).
    trainer = Trainer(examples=transform.outputs.transformed_examples,
                      transform_graph=transform.outputs.transform_graph, label="label", task="binary",
                      model=model, hparams={} if model == "logistic_regression" else
                      {"hidden": [128, 64], "embedding_dim": 4},
                      epochs=epochs, batch_size=2048, learning_rate=4e-3, seed=seed)
    evaluator = Evaluator(model=trainer.outputs.model, examples=gen.outputs.examples,
                          transform_graph=transform.outputs.transform_graph, slices=["C2"],
                          thresholds={"auc": Threshold(lower_bound=0.6, max_decrease=0.01)})
    pusher = Pusher(model=trainer.outputs.model, transform=transform.outputs.transform_graph,
                    blessing=evaluator.outputs.blessing, schema=schema.outputs.schema,
                    destination=serving_dir, model_name="ctr")
    return Pipeline("ctr", [data, gen, stats, schema, validator, transform, trainer, evaluator, pusher])


def report(result, serving_dir: str = "serving", **_: object) -> None:
    """Print the model's AUC beside the Bayes-optimal AUC, where things are, and how to serve."""
    bayes = result.output("ctr_data_generator", "data").properties["bayes_optimal_auc"]
    metrics = result.output("Evaluator", "evaluation").properties["metrics"]
    pushed = result.output("Pusher", "pushed_model").properties
    print(f"\nmodel AUC        {metrics['auc']:.4f}   (log loss {metrics['log_loss']:.4f})")
    print(f"Bayes-optimal    {bayes:.4f}   (the best any model can do on this data; gap {bayes - metrics['auc']:.4f})")
    print(f"blessing         {result.output('Evaluator', 'blessing').properties['summary']}")
    print(f"artifacts        .sluice/artifacts/ctr/   (sluice show {result.run_id[:12]})")
    if pushed.get("pushed"):
        print(f"pushed           {pushed['path']}")
        print(f"serve it with    sluice serve --model-dir {serving_dir}")
