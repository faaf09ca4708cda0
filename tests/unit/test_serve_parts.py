"""The server's small parts without HTTP: version policy, traffic split, micro-batching, config checks, auth."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest

from sluice.errors import SluiceError
from sluice.serve.auth import BearerAuth
from sluice.serve.batching import MicroBatcher
from sluice.serve.config import ModelConfig, ServeConfig, is_loopback
from sluice.serve.versions import TrafficSplit, wanted_versions


def test_version_policy_and_labels():
    assert wanted_versions([1, 2, 3, 4], latest=1, specific=None, labels={}) == [4]
    assert wanted_versions([1, 2, 3, 4], latest=2, specific=None, labels={"production": 1}) == [1, 3, 4]
    assert wanted_versions([1, 2, 3], latest=None, specific=[2, 9], labels={}) == [2]
    assert wanted_versions([1, 2, 3], latest=None, specific=None, labels={"x": 7}) == [1, 2, 3]
    assert wanted_versions([], latest=1, specific=None, labels={"production": 1}) == []


def test_traffic_split_follows_weights_and_skips_unloaded_targets():
    split = TrafficSplit({"stable": 80, "canary": 20, "9": 50}, rng=random.Random(0))
    labels = {"stable": 1, "canary": 2}
    picks = [split.choose(labels, {1, 2}) for _ in range(2000)]
    assert set(picks) == {1, 2} and 0.17 < picks.count(2) / 2000 < 0.23
    assert {split.choose(labels, {1}) for _ in range(50)} == {1}
    assert split.choose(labels, set()) is None


def test_micro_batcher_groups_concurrent_requests_and_splits_outputs():
    calls: list[int] = []

    def predict(table: pa.Table) -> dict[str, np.ndarray]:
        calls.append(threading.get_ident())
        x = table.column("x").to_numpy()
        return {"double": x * 2.0}

    sizes: list[int] = []

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(predict, max_batch_size=8, max_wait=0.05, executor=ThreadPoolExecutor(1),
                               on_batch=sizes.append)
        tables = [pa.table({"x": [float(i), float(i) + 0.5]}) for i in range(10)]
        outs = await asyncio.gather(*(batcher.submit(t) for t in tables))
        await batcher.aclose()
        late = await batcher.submit(pa.table({"x": [1.0]}))  # after close: runs alone, still answered
        return [o["double"] for o in outs] + [late["double"]]

    outs = asyncio.run(main())
    assert [o.tolist() for o in outs[:10]] == [[2.0 * i, 2.0 * i + 1.0] for i in range(10)]
    assert outs[10].tolist() == [2.0]
    assert sizes[:3] == [8, 8, 4] and sum(sizes) == 21  # 20 rows in 3 calls of at most 8, then the late one
    assert threading.get_ident() not in calls  # inference ran off the event loop's thread


def test_micro_batcher_model_error_reaches_every_request():
    def broken(table: pa.Table) -> dict[str, np.ndarray]:
        raise RuntimeError("model exploded")

    async def main() -> list[BaseException]:
        batcher = MicroBatcher(broken, max_batch_size=4, max_wait=0.01)
        results = await asyncio.gather(*(batcher.submit(pa.table({"x": [1.0]})) for _ in range(3)),
                                       return_exceptions=True)
        await batcher.aclose()
        return results

    assert [str(r) for r in asyncio.run(main())] == ["model exploded"] * 3


def test_config_file_and_checks(tmp_path, monkeypatch):
    (tmp_path / "models" / "ctr").mkdir(parents=True)
    (tmp_path / "serve.yaml").write_text(
        "model_roots: [models]\nport: 9000\nmodels:\n"
        "  - {name: ctr, path: models/ctr, versions: {latest: 2}, labels: {stable: 1}, traffic: {stable: 1}}\n"
        "request_log: {dir: log, sample: 0.25}\n")
    config = ServeConfig.load(str(tmp_path / "serve.yaml"), port=9100, host=None)
    assert config.port == 9100 and config.host == "127.0.0.1"
    [m] = config.models
    assert (m.name, m.latest, m.labels, m.traffic) == ("ctr", 2, {"stable": 1}, {"stable": 1.0})
    assert config.request_log_dir == str(tmp_path / "log") and config.request_log_sample == 0.25
    config.check()
    assert ServeConfig.from_json(config.to_json()) == config
    (tmp_path / "bad.yaml").write_text("models: []\nworkerz: 2\n")
    with pytest.raises(SluiceError, match="unknown settings \\['workerz'\\]"):
        ServeConfig.load(str(tmp_path / "bad.yaml"))
    with pytest.raises(SluiceError, match="versions.latest must be a positive integer"):
        ModelConfig.from_dict({"name": "a", "path": "p", "versions": {"latest": 0}})
    monkeypatch.delenv("SLUICE_SERVE_TOKENS", raising=False)
    config.host = "0.0.0.0"
    with pytest.raises(SluiceError, match="needs bearer tokens"):
        config.check()
    monkeypatch.setenv("SLUICE_SERVE_TOKENS", "t1")
    config.check()
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")


def test_bearer_auth_accepts_only_configured_tokens():
    auth = BearerAuth(app=None, tokens={"abc", "xyz"})
    assert auth.allowed(b"Bearer abc") and auth.allowed(b"bearer xyz")
    assert not auth.allowed(b"Bearer abd") and not auth.allowed(b"abc") and not auth.allowed(None)
    assert not auth.allowed(b"Bearer ") and not auth.allowed(b"Basic abc")
