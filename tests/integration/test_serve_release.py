"""Hot reload under steady load, a failed load that changes nothing, and release by alias:
`sluice models promote | rollback` while `sluice serve --store` follows — all over real HTTP."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from sluice.metadata import MetadataStore
from tests.integration.serving_helpers import build_ctr, copy_version, running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_ctr(tmp_path_factory.mktemp("ctr-build"))


def test_hot_reload_under_load_drops_no_request(built, tmp_path):
    serving, v1, rows, _ = built
    serving = shutil.copytree(serving, tmp_path / "serving")
    with running(["--model-dir", str(serving), "--poll-seconds", "0.3", "--no-access-log"],
                 tmp_path / "server.log") as server:
        stop = threading.Event()
        results: list[tuple[int, str]] = []
        errors: list[str] = []

        def load(worker: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                i = worker
                while not stop.is_set():
                    try:
                        r = client.post("/v1/models/ctr:predict", json={"instances": [rows[i % 50]]})
                        results.append((r.status_code, r.json().get("model_version", "")))
                    except Exception as exc:  # a dropped connection is a failure too
                        errors.append(repr(exc))
                    i += 4

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            copy_version(serving, "ctr", 2, v1)  # a new version pushed under load
            server.wait_for(lambda: any(v == "2" for _, v in results[-20:]), "version 2 serving")
            broken = serving / "ctr" / "3"  # a version that cannot load: signature but no model
            broken.mkdir()
            shutil.copy(v1 / "signature.json", broken / "signature.json")
            server.wait_for(lambda: "loading ctr version 3 failed" in server.log(), "the failed load reported")
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert not errors, errors[:5]
        assert len(results) > 100, len(results)
        assert all(code == 200 for code, _ in results), [r for r in results if r[0] != 200][:5]
        versions = [v for _, v in results]
        assert set(versions) == {"1", "2"}
        switched = versions.index("2")
        assert versions[switched + 30:].count("1") == 0, "after the swap only v2 answers"
        assert "loaded ctr v2" in server.log() and "now serving ctr v2" in server.log()
        status = server.client.get("/v1/models/ctr").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("3", "END"), ("2", "AVAILABLE")]
        metrics = server.client.get("/metrics").text
        assert 'sluice_model_load_failures_total{model="ctr",version="3"} 1.0' in metrics


def sluice(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "sluice.cli", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_promote_and_rollback_are_followed_by_the_server(built, tmp_path):
    serving, v1, rows, home = built
    serving = shutil.copytree(serving, tmp_path / "serving")
    db = tmp_path / "metadata.db"
    with sqlite3.connect(home / "metadata.db") as src, sqlite3.connect(db) as dst:
        src.backup(dst)  # a consistent copy (the store runs in WAL mode)
    store = MetadataStore.open(str(db))
    [registered] = store.model_versions("ctr")
    assert registered.version == 1 and registered.source_model_id is not None
    store.register_model_version("ctr", str(serving / "ctr"), None, registered.source_model_id, registered.run_id)
    copy_version(serving, "ctr", 2, v1)
    assert sluice("models", "promote", "ctr", "1", "--store", str(db), "--note", "first release") == \
        "ctr production -> v1\n"
    with running(["--model-dir", str(serving), "--store", str(db), "--poll-seconds", "0.3", "--no-access-log"],
                 tmp_path / "server.log") as server:
        def default_version() -> str:
            return server.client.post("/v1/models/ctr:predict", json={"instances": rows[:1]}).json()["model_version"]

        assert default_version() == "1"  # production wins over the newest version
        assert server.client.get("/v1/models/ctr/labels/production").json()["model_version_status"][0]["version"] == "1"
        assert sluice("models", "promote", "ctr", "2", "--store", str(db)) == "ctr production -> v2 (was v1)\n"
        server.wait_for(lambda: default_version() == "2", "the server follows the promotion")
        assert sluice("models", "rollback", "ctr", "--store", str(db), "--note", "bad CTR") == \
            "ctr production -> v1 (rolled back from v2)\n"
        server.wait_for(lambda: default_version() == "1", "the server follows the rollback")
        assert "labels of ctr: production->v1" in server.log()
    shown = sluice("models", "show", "ctr", "--store", str(db))
    assert "v1" in shown and "[production]" in shown and "examples: #" in shown and "transform: #" in shown
    history = shown.split("alias history:")[1].strip().splitlines()
    assert [line.split()[2:6] for line in history] == [
        ["production", "set", "v1", "first"], ["production", "set", "v2", "promoted"],
        ["production", "set", "v1", "rollback"]]
    assert history[-1].endswith("rollback from v2: bad CTR")
    listed = sluice("models", "list", "--store", str(db))
    assert listed.splitlines()[1].split() == ["ctr", "2", "v2", "production->v1"]
    # nothing earlier than v1 to roll back to: a clear error, no traceback
    done = subprocess.run([sys.executable, "-m", "sluice.cli", "models", "rollback", "ctr", "--store", str(db)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no earlier version to roll back to" in done.stderr, done.stderr
