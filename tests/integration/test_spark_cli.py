"""``sluice run --engine spark`` end to end: the CTR example on local[2] and on a standalone cluster.

Each run is a subprocess (a process holds one SparkContext); the metrics must
match a run on the local engine closely (training reads shards cut differently,
so the models are not bit-identical).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PARAMS = ["-p", "rows=4000", "-p", "epochs=1", "-p", "model=logistic_regression"]


def _sluice(tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("SLUICE_STORE", None)
    out = subprocess.run([sys.executable, "-m", "sluice.cli", "run", str(REPO / "examples/ctr/pipeline.py"), *PARAMS,
                          "--store", str(tmp_path / "meta.db"), "--artifacts", str(tmp_path / "art"),
                          "--no-cache", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    evaluations = sorted((tmp_path / "art" / "ctr" / "Evaluator" / "evaluation").glob("*/candidate/evaluation.json"))
    return json.loads(evaluations[-1].read_text())["metrics"]


@pytest.fixture(scope="module")
def local_metrics(tmp_path_factory) -> dict:
    return _sluice(tmp_path_factory.mktemp("local"))


def _close(a: dict, b: dict) -> None:
    assert a["count"] == b["count"]  # the same eval rows
    assert abs(a["auc"] - b["auc"]) < 0.03 and abs(a["log_loss"] - b["log_loss"]) < 0.03, (a, b)


def test_ctr_on_spark_local(tmp_path, local_metrics):
    _close(local_metrics, _sluice(tmp_path, "--engine", "spark", "--master", "local[2]"))


def test_ctr_on_standalone_cluster(tmp_path, local_metrics, standalone_master):
    metrics = _sluice(tmp_path, "--engine", "spark", "--master", standalone_master, "--executor-memory", "768m",
                      "--spark-conf", "spark.executor.cores=1")
    _close(local_metrics, metrics)


def test_unknown_engine_and_misplaced_options(tmp_path):
    run = [sys.executable, "-m", "sluice.cli", "run", str(REPO / "examples/ctr/pipeline.py")]
    out = subprocess.run([*run, "--engine", "flink"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0 and "available engines: local, spark" in out.stderr
    out = subprocess.run([*run, "--master", "local[2]"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode != 0 and "only apply to --engine spark" in out.stderr
