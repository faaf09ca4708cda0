"""Request logging to Parquet and `sluice validate-serving`: served rows compared with the training
statistics through the validator (skew), over a real server and the real CLI."""

from __future__ import annotations

import glob
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from sluice.metadata import MetadataStore
from tests.integration.serving_helpers import build_ctr, copy_version, running

pytestmark = pytest.mark.slow


def test_served_rows_are_logged_and_checked_for_skew(tmp_path_factory, tmp_path):
    serving, v1, rows, home = build_ctr(tmp_path_factory.mktemp("ctr-build"))
    copy_version(tmp_path / "serving", "ctr", 1, v1)
    copy_version(tmp_path / "serving", "skewed", 1, v1)
    log_dir = tmp_path / "reqlog"
    args = ["--model-dir", str(tmp_path / "serving"), "--request-log", str(log_dir), "--no-access-log"]
    skewed_rows = [dict(r, I1=-1e6 - i, C1="c1_never_seen") for i, r in enumerate(rows)]
    with running(args, tmp_path / "server.log") as server:
        for i in range(0, 50, 5):
            assert server.client.post("/v1/models/ctr:predict", json={"instances": rows[i:i + 5]}).status_code == 200
            assert server.client.post("/invocations?model=skewed",
                                      json={"dataframe_records": skewed_rows[i:i + 5]}).status_code == 200
        assert server.client.post("/v1/models/ctr:predict", json={"instances": [{"I1": "bad"}]}).status_code == 400
    # flushed at shutdown, one complete file per model, no temporary files left
    files = sorted(glob.glob(str(log_dir / "ctr" / "*")) + glob.glob(str(log_dir / "ctr" / ".*")))
    assert len(files) == 1 and files[0].endswith(".parquet") and "/part-" in files[0], files
    table = pq.read_table(files[0])
    assert table.num_rows == 50  # the invalid request is not logged
    assert {"_version", "_ts", "_probability"} <= set(table.column_names)
    assert table.column("I1").to_pylist()[:5] == [r["I1"] for r in rows[:5]]
    assert set(table.column("_version").to_pylist()) == {1}
    assert all(0 < p < 1 for p in table.column("_probability").to_pylist())

    store = MetadataStore.open(str(home / "metadata.db"))
    statistics = store.artifacts(type="Statistics")[-1].uri
    schema = store.artifacts(type="Schema")[-1].uri

    def validate(model: str) -> tuple[int, dict]:
        done = subprocess.run([sys.executable, "-m", "sluice.cli", "validate-serving", "--log-dir",
                               str(log_dir / model), "--statistics", statistics, "--schema", schema,
                               "--skew-threshold", "0.95", "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    code, report = validate("ctr")
    skew = [a for a in report["anomalies"] if a["kind"] == "skew"]
    assert code == 0 and skew == [], skew
    code, report = validate("skewed")
    skew = {a["feature"]: a for a in report["anomalies"] if a["kind"] == "skew"}
    assert code == 1 and {"I1", "C1"} <= set(skew), report
    # 50 rows against equal-width training histograms of heavy-tailed counts measure JS up to ~0.85
    # even when unskewed, hence the high threshold; disjoint values measure 1.0
    assert skew["C1"]["distance"] == pytest.approx(1.0) and skew["I1"]["distance"] == pytest.approx(1.0)
    assert skew["C1"]["compared"].startswith("serving data") and skew["C1"]["compared"].startswith("serving data")
    assert not any(a["kind"] == "missing_feature" for a in report["anomalies"])
