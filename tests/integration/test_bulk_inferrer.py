"""BulkInferrer on the local engine and on Spark (local[2]): predictions with their keys, equal to the servable's."""

from __future__ import annotations

import glob
import os

import pyarrow.parquet as pq
import pytest

from sluice.artifacts import ArtifactStore
from sluice.components import BulkInferrer
from sluice.dsl.pipeline import Pipeline
from sluice.metadata import MetadataStore
from sluice.registry.servable import Servable
from sluice.runner import LocalRunner
from sluice.runner.pipeline_file import load_pipeline
from tests.integration.serving_helpers import REPO, build_ctr

pytestmark = pytest.mark.slow


def run_with(home, serving, inferrers, engine="local", **engine_options):
    pipeline, params, _ = load_pipeline(str(REPO / "examples" / "ctr" / "pipeline.py"),
                                        {"rows": "20000", "epochs": "2", "serving_dir": str(serving)})
    gen, pusher = pipeline.step("ExampleGen"), pipeline.step("Pusher")
    trainer, transform = pipeline.step("Trainer"), pipeline.step("Transform")
    steps = [make(gen, pusher, trainer, transform) for make in inferrers]
    runner = LocalRunner(MetadataStore.open(str(home / "metadata.db")), ArtifactStore(str(home / "artifacts")),
                         progress=False, log_dir=str(home / "logs"), engine=engine, engine_options=engine_options)
    result = runner.run(Pipeline("ctr", [*pipeline.components, *steps]), params)
    assert result.status == "succeeded", {n: s.error for n, s in result.steps.items() if s.error}
    return result


def predictions(result, step):
    out = result.output(step, "inference_result")
    return pq.read_table(sorted(glob.glob(os.path.join(out.path, "predictions", "*.parquet")))), out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_ctr(tmp_path_factory.mktemp("ctr-build"))


def test_bulk_inferrer_local_pushed_and_parts(built):
    serving, v1, _, home = built
    result = run_with(home, serving, [
        lambda g, p, t, x: BulkInferrer(examples=g.outputs.examples, pushed_model=p.outputs.pushed_model,
                                        keys=["user_id"]),
        lambda g, p, t, x: BulkInferrer(examples=g.outputs.examples, model=t.outputs.model,
                                        transform_graph=x.outputs.transform_graph, keys=["user_id", "C2"],
                                        name="BulkInferrerParts")])
    table, out = predictions(result, "BulkInferrer")
    eval_rows = result.output("ExampleGen", "examples").properties["splits"]["eval"]
    assert table.column_names == ["user_id", "prediction"] and table.num_rows == eval_rows
    assert out.properties["rows"] == eval_rows and out.properties["source"] == "ctr v1"
    # the same numbers as the servable on the same rows, matched by key
    raw = pq.read_table(sorted(glob.glob(os.path.join(result.output("ExampleGen", "examples").path, "eval",
                                                       "*.parquet")))).slice(0, 200)
    servable = Servable.load(str(v1))
    expected = dict(zip(raw.column("user_id").to_pylist(),
                        servable.predict(raw.select(list(servable.signature.inputs)))["probability"].tolist()))
    got = dict(zip(table.column("user_id").to_pylist(), table.column("prediction").to_pylist()))
    from collections import Counter

    seen = Counter(table.column("user_id").to_pylist())
    keys = [k for k in expected if seen[k] == 1][:100]  # a user may have several rows: match unique keys
    assert len(keys) >= 20
    assert [got[k] for k in keys] == pytest.approx([expected[k] for k in keys], abs=1e-5)
    parts, _ = predictions(result, "BulkInferrerParts")
    assert parts.column_names == ["user_id", "C2", "prediction"] and parts.num_rows == eval_rows
    assert sorted(parts.column("prediction").to_pylist()) == pytest.approx(
        sorted(table.column("prediction").to_pylist()), abs=1e-6)


def test_bulk_inferrer_on_spark_matches_local(built, spark_session):
    serving, _, _, home = built
    make = [lambda g, p, t, x: BulkInferrer(examples=g.outputs.examples, pushed_model=p.outputs.pushed_model,
                                            keys=["user_id"], name="BulkInferrerBoth", cache=False)]
    local, _ = predictions(run_with(home, serving, make), "BulkInferrerBoth")
    spark, _ = predictions(run_with(home, serving, make, engine="spark", master="local[2]"), "BulkInferrerBoth")
    assert spark.num_rows == local.num_rows
    def by_key(t):
        return sorted(zip(t.column("user_id").to_pylist(), t.column("prediction").to_pylist()))

    assert [k for k, _ in by_key(spark)] == [k for k, _ in by_key(local)]
    assert [p for _, p in by_key(spark)] == pytest.approx([p for _, p in by_key(local)], abs=1e-6)
