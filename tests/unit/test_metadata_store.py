"""MetadataStore: opening, runs, executions, artifacts, events, the cache, metrics.

Runs on a SQLite file, and on every PostgreSQL URL in SLUICE_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import sqlalchemy as sa

from sluice.metadata import MetadataStore


def _step(store, run, step, fp, outputs=(), inputs=None, status="succeeded"):
    """One execution producing ``outputs`` (output keys) and consuming ``inputs`` {key: artifact id}."""
    ex = store.start_execution(run, step, step.title(), fp, {"p": 1}, f"logs/{step}.log")
    for key, aid in (inputs or {}).items():
        store.record_event(ex, aid, "input", key)
    ids = {key: store.add_artifact(key.title(), key, f"/art/{step}/{ex}/{key}", {}, f"h-{ex}", producer=ex) for key in outputs}
    store.finish_execution(ex, status)
    return ex, ids


# -- opening ----------------------------------------------------------------------------------


def test_open_defaults_to_sqlite_file_under_workdir(tmp_path, monkeypatch):
    monkeypatch.delenv("SLUICE_STORE", raising=False)
    with MetadataStore.open(workdir=tmp_path) as store:
        assert store.url == f"sqlite:///{tmp_path.resolve()}/.sluice/metadata.db"
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("SELECT value FROM store_info").scalar() == "1"
    assert (tmp_path / ".sluice" / "metadata.db").is_file()


def test_open_env_var_and_relative_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SLUICE_STORE", str(tmp_path / "env" / "m.db"))
    with MetadataStore.open() as store:
        run_id = store.create_run("p", {}, "local")
    with MetadataStore.open("env/m.db", workdir=tmp_path) as again:  # same file, reopened
        assert again.run(run_id).pipeline == "p"
    with MetadataStore.open(f"sqlite:///{tmp_path}/url.db") as by_url:
        assert by_url.runs() == []


# -- runs and executions ------------------------------------------------------------------------


def test_run_lifecycle(store):
    run_id = store.create_run("ctr", {"epochs": 3, "lr": 0.1}, engine="spark")
    run = store.run(run_id)
    assert (run.pipeline, run.status, run.engine, run.params) == ("ctr", "running", "spark", {"epochs": 3, "lr": 0.1})
    assert (run.pid, run.host) == (os.getpid(), socket.gethostname())
    assert run.user and run.ended_at is None and run.duration is None
    assert run.started_at.tzinfo is not None

    store.finish_run(run_id, "failed", error="trainer: boom")
    run = store.run(run_id)
    assert (run.status, run.error) == ("failed", "trainer: boom")
    assert run.ended_at >= run.started_at and run.duration >= 0
    assert json.loads(json.dumps(run.to_dict()))["status"] == "failed"

    with pytest.raises(ValueError, match="expected one of"):
        store.finish_run(run_id, "done")
    with pytest.raises(KeyError):
        store.finish_run("nope", "succeeded")


def test_runs_listing_and_prefix_lookup(store):
    ids = [store.create_run("a", {"i": i}, "local") for i in range(3)] + [store.create_run("b", {}, "local")]
    assert [r.id for r in store.runs("a")] == ids[2::-1]  # newest first
    assert [r.id for r in store.runs(limit=2)] == [ids[3], ids[2]]
    assert {r.pipeline for r in store.runs()} == {"a", "b"}
    assert store.run(ids[1][:12]).id == ids[1]
    with pytest.raises(KeyError, match="no run"):
        store.run("zzzz")
    with pytest.raises(KeyError, match="ambiguous"):
        store.run("")  # every id matches the empty prefix
    with pytest.raises(KeyError):
        store.run("%")  # LIKE wildcards are escaped, not interpreted


def test_execution_lifecycle(store):
    run = store.create_run("p", {}, "local")
    first = store.start_execution(run, "gen", "ExampleGen", "fp-gen", {"path": "/d"}, "logs/gen.log")
    second = store.start_execution(run, "train", "Trainer", "fp-train", None, None)
    ex = store.execution(first)
    assert (ex.status, ex.step, ex.component, ex.parameters, ex.log_path) == (
        "running", "gen", "ExampleGen", {"path": "/d"}, "logs/gen.log")
    store.finish_execution(first, "succeeded")
    store.finish_execution(second, "failed", error="Traceback ...", attempts=3)
    got = store.executions(run)
    assert [(e.id, e.status, e.attempts, e.error) for e in got] == [
        (first, "succeeded", 1, None), (second, "failed", 3, "Traceback ...")]
    assert got[0].fingerprint == "fp-gen" and got[0].duration >= 0
    with pytest.raises(ValueError):
        store.finish_execution(first, "running")
    with pytest.raises(KeyError):
        store.finish_execution(10**9, "succeeded")


# -- artifacts, events ----------------------------------------------------------------------------


def test_artifacts_events_and_io(store):
    run = store.create_run("p", {}, "local")
    gen, out = _step(store, run, "gen", "f1", outputs=["examples"])
    train, trained = _step(store, run, "train", "f2", outputs=["model"], inputs={"examples": out["examples"]})
    store.record_event(train, out["examples"], "input", "examples")  # twice: still one edge

    assert list(store.outputs_of(gen)) == ["examples"]
    assert store.inputs_of(train)["examples"].id == out["examples"]
    assert store.outputs_of(train)["model"].producer_id == train
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 3

    art = store.artifact(trained["model"])
    assert (art.type, art.name, art.state, art.properties, art.fingerprint) == ("Model", "model", "live", {}, f"h-{train}")
    assert [a.id for a in store.artifacts("Model")] == [trained["model"]]
    assert [a.id for a in store.artifacts(run_id=run)] == [out["examples"], trained["model"]]
    assert store.artifacts(run_id="other") == []

    store.set_artifact_state(art.id, "deleted")
    assert store.artifact(art.id).state == "deleted"
    with pytest.raises(ValueError):
        store.set_artifact_state(art.id, "gone")
    with pytest.raises(ValueError):
        store.record_event(train, art.id, "sideways", "x")
    with pytest.raises(KeyError):
        store.artifact(10**9)
    assert json.loads(json.dumps(art.to_dict()))["producer_id"] == train


def test_find_cached_semantics(store):
    run = store.create_run("p", {}, "local")
    assert store.find_cached("fp") is None

    old, old_out = _step(store, run, "s", "fp", outputs=["out"])
    _step(store, run, "s", "fp", outputs=["out"], status="failed")  # newer but failed
    running = store.start_execution(run, "s", "S", "fp", {}, None)  # newer but still running
    hit = store.find_cached("fp")
    assert hit.execution.id == old and hit.outputs["out"].id == old_out["out"]

    new, new_out = _step(store, run, "s", "fp", outputs=["out"])
    assert store.find_cached("fp").execution.id == new  # latest succeeded wins

    store.set_artifact_state(new_out["out"], "deleted")  # files gone -> not a hit, fall back
    assert store.find_cached("fp").execution.id == old
    store.set_artifact_state(old_out["out"], "pending")  # half written -> not a hit either
    assert store.find_cached("fp") is None

    # An execution that reused a cache entry is not itself a cache source.
    store.set_artifact_state(old_out["out"], "live")
    store.finish_execution(running, "cached", cached_from=old)
    assert store.execution(running).cached_from == old
    assert store.find_cached("fp").execution.id == old
    assert store.find_cached("other-fp") is None


def test_latest_artifact(store):
    blessings = []
    for blessed in (True, False, True, False):
        run = store.create_run("ctr", {}, "local")
        ex = store.start_execution(run, "eval", "Evaluator", None, {}, None)
        blessings.append(store.add_artifact("Blessing", "blessing", "/b", {"blessed": blessed}, None, producer=ex))
    other = store.create_run("other", {}, "local")
    ex = store.start_execution(other, "eval", "Evaluator", None, {}, None)
    store.add_artifact("Blessing", "blessing", "/b", {"blessed": True}, None, producer=ex)

    assert store.latest_artifact("Blessing", "ctr").id == blessings[3]
    assert store.latest_artifact("Blessing", "ctr", where=lambda p: p.get("blessed") is True).id == blessings[2]
    store.set_artifact_state(blessings[2], "deleted")
    assert store.latest_artifact("Blessing", "ctr", where=lambda p: p["blessed"]).id == blessings[0]
    assert store.latest_artifact("Blessing", "ctr", name="other-key") is None
    assert store.latest_artifact("Model", "ctr") is None
    assert store.latest_artifact("Blessing", "nope") is None


# -- metrics ------------------------------------------------------------------------------------


def test_metrics(store):
    run = store.create_run("p", {}, "local")
    ex = store.start_execution(run, "train", "Trainer", None, {}, None)
    for step in range(100):
        store.log_metric(run, ex, "loss", 1.0 / (step + 1), step)
    store.log_metrics(run, ex, {"auc": 0.81, "logloss": float("nan")}, step=99)
    store.log_metrics(run, None, {}, step=0)  # nothing to write is fine

    loss = store.metrics(run, "loss")
    assert [m.step for m in loss] == list(range(100))
    assert loss[9].value == pytest.approx(0.1) and loss[0].execution_id == ex
    assert [m.name for m in store.metrics(run)] == ["auc", "logloss"] + ["loss"] * 100
    assert math.isnan(store.metrics(run, "logloss")[0].value)
    assert store.metrics(run, "missing") == []
    assert json.dumps(loss[0].to_dict())


def test_json_columns_are_portable_json(store):
    run = store.create_run("p", {"nested": {"a": [1, 2.5, None, "x"]}}, "local")
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT params FROM runs WHERE id = :i"), {"i": run}).scalar()
    assert (json.loads(raw) if isinstance(raw, str) else raw) == {"nested": {"a": [1, 2.5, None, "x"]}}
    assert store.run(run).params == {"nested": {"a": [1, 2.5, None, "x"]}}
