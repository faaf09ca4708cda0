"""Several worker processes on one port, and a traffic split between labelled versions, over real HTTP."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.integration.serving_helpers import build_ctr, copy_version, running

pytestmark = pytest.mark.slow


def test_two_workers_split_traffic_and_aggregate_metrics(tmp_path_factory, tmp_path):
    _, v1, rows, _ = build_ctr(tmp_path_factory.mktemp("ctr-build"))
    copy_version(tmp_path / "serving", "ctr", 1, v1)
    copy_version(tmp_path / "serving", "ctr", 2, v1)
    (tmp_path / "serve.yaml").write_text(
        "model_roots: [serving]\naccess_log: false\nmodels:\n"
        "  - name: ctr\n    path: serving/ctr\n    versions: {specific: [1, 2]}\n"
        "    labels: {stable: 1, canary: 2}\n    traffic: {stable: 75, canary: 25}\n")
    with running(["--config", str(tmp_path / "serve.yaml"), "--workers", "2"], tmp_path / "server.log") as server:
        versions = Counter()
        for i in range(240):
            response = server.client.post("/v1/models/ctr:predict", json={"instances": [rows[i % 50]]})
            assert response.status_code == 200, response.text
            versions[response.json()["model_version"]] += 1
        # 75/25 split: v2 gets 60 expected, binomial sd ~6.7
        assert 30 <= versions["2"] <= 95 and versions["1"] + versions["2"] == 240, versions
        # a pinned version or label bypasses the split
        assert {server.client.post("/v1/models/ctr/labels/canary:predict",
                                   json={"instances": rows[:1]}).json()["model_version"] for _ in range(10)} == {"2"}
        text = server.client.get("/metrics").text
        counts = {v: float(n) for v, n in re.findall(
            r'sluice_requests_total\{code="200",model="ctr",protocol="tfserving",version="(\d)"\} (\S+)', text)}
        # samples of both processes are summed: the counts match what the client saw
        assert counts == {"1": versions["1"], "2": versions["2"] + 10}, (counts, versions)
    assert "with 2 worker(s)" in server.log()
