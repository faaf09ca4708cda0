"""The CTR example end to end: generate, ingest, validate, transform, train, evaluate, bless, push,
serve over real HTTP (predictions equal the batch path's), and a fully cached re-run."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from sluice.registry.servable import Servable
from sluice.runner.pipeline_file import load_pipeline

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STEPS = ["ctr_data_generator", "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
         "Trainer", "Evaluator", "Pusher"]
ROWS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path):
    """Start `sluice serve --model-dir DIR` in a subprocess; return its base URL once /healthz answers."""
    procs: list[tuple[subprocess.Popen, object]] = []

    def start(model_dir: str, timeout: float = 30.0) -> str:
        port = _free_port()
        log_path = tmp_path / f"server-{port}.log"
        log = open(log_path, "w")
        proc = subprocess.Popen([sys.executable, "-m", "sluice.cli", "serve", "--model-dir", model_dir,
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"server exited with {proc.returncode}:\n{log_path.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    return url
            assert time.monotonic() < deadline, f"server not healthy in {timeout} s:\n{log_path.read_text()}"
            time.sleep(0.1)

    yield start
    for proc, log in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def _load(serving_dir: Path):
    # The example imports `examples.ctr.data`: the repository root must be importable.
    assert (REPO / "examples" / "ctr" / "data.py").is_file()
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    # epochs=2: with batch_size 4096, 16k training rows make 4 steps an epoch; 2 epochs put the
    # AUC well clear of the pipeline's 0.6 blessing threshold (deterministic: seed 0).
    return load_pipeline(str(REPO / "examples" / "ctr" / "pipeline.py"),
                         {"rows": str(ROWS), "epochs": "2", "serving_dir": str(serving_dir)})


def test_ctr_pipeline_trains_blesses_pushes_serves_and_caches(workdir, make_runner, serve):
    serving = workdir / "serving"
    pipeline, params, _ = _load(serving)
    runner = make_runner()
    result = runner.run(pipeline, params)

    assert result.status == "succeeded", {n: s.error for n, s in result.steps.items() if s.error}
    assert {n: s.state for n, s in result.steps.items()} == dict.fromkeys(STEPS, "succeeded")

    # Data: every generated row lands in exactly one split.
    data = result.output("ctr_data_generator", "data").properties
    assert data["rows"] == ROWS
    examples = result.output("ExampleGen", "examples")
    splits = examples.properties["splits"]
    assert set(splits) == {"train", "eval"} and sum(splits.values()) == ROWS
    assert examples.properties["rows"] == ROWS
    assert 0.75 < splits["train"] / ROWS < 0.85

    # Evaluation: clearly better than chance, below the best any model could do on this data.
    metrics = result.output("Evaluator", "evaluation").properties["metrics"]
    auc, bayes = metrics["auc"], data["bayes_optimal_auc"]
    assert metrics["count"] == splits["eval"]
    assert auc > 0.65, metrics
    assert 0.75 < bayes < 0.95 and bayes > auc + 0.02, (auc, bayes)

    # Blessing recorded, with its reasons.
    blessing = result.output("Evaluator", "blessing").properties
    assert blessing["blessed"] is True and blessing["forced"] is False
    assert blessing["summary"].startswith("BLESSED auc=")
    assert "no baseline: first model, judged on thresholds only" in blessing["reasons"]
    assert f"auc {auc:.4f} >= lower bound 0.6" in blessing["reasons"]

    # Push: version 1, a complete servable.
    pushed = result.output("Pusher", "pushed_model").properties
    version_dir = serving / "ctr" / "1"
    assert pushed["pushed"] is True and pushed["version"] == 1 and pushed["model_name"] == "ctr"
    assert pushed["path"] == str(version_dir)
    assert sorted(os.listdir(serving / "ctr")) == ["1"]
    assert sorted(os.listdir(version_dir)) == ["model", "signature.json", "transform"]
    assert os.path.isfile(version_dir / "model" / "model.safetensors")
    assert os.path.isfile(version_dir / "transform" / "transform.json")
    signature = json.loads((version_dir / "signature.json").read_text())
    assert signature["model_name"] == "ctr" and signature["task"] == "binary"
    expected_inputs = {f"I{i}" for i in range(1, 14)} | {f"C{i}" for i in range(1, 27)}
    assert set(signature["inputs"]) == expected_inputs

    # Serving == batch path: 3 raw eval rows over HTTP vs the servable scoring an Arrow table in-process.
    eval_files = sorted(glob.glob(os.path.join(examples.path, "eval", "*.parquet")))
    raw = pq.read_table(eval_files).slice(0, 3)
    assert raw.num_rows == 3 and "label" in raw.column_names
    features = raw.select(sorted(expected_inputs))
    instances = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
                 for row in features.to_pylist()]
    assert any(v is None for row in instances for v in row.values()), "want a missing value among the rows"
    url = serve(str(serving))
    response = httpx.post(f"{url}/v1/models/ctr:predict", json={"instances": instances}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == 3
    served = [p["probability"] for p in body["predictions"]]
    assert all(0.0 < p < 1.0 for p in served)
    batch = Servable.load(str(version_dir)).predict(features)["probability"]
    assert served == pytest.approx([float(p) for p in batch], abs=1e-6)
    assert len(set(round(p, 6) for p in served)) == 3, "three different rows, three different scores"

    # A second identical run is served from the cache, quickly, and pushes nothing new.
    again, _, _ = _load(serving)
    started = time.monotonic()
    second = make_runner().run(again, params)
    elapsed = time.monotonic() - started
    assert second.status == "succeeded"
    assert {n: s.state for n, s in second.steps.items()} == dict.fromkeys(STEPS, "cached")
    assert elapsed < 5.0, f"cached re-run took {elapsed:.1f} s"
    assert second.output("Pusher", "pushed_model").uri == result.output("Pusher", "pushed_model").uri
    assert sorted(os.listdir(serving / "ctr")) == ["1"]
