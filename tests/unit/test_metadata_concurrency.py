"""MetadataStore under concurrent writer processes, and recovery from dead runners.

Runs on a SQLite file, and on every PostgreSQL URL in SLUICE_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from sluice.metadata import MetadataStore
from sluice.metadata.retention import pid_alive
from sluice.metadata.schema import artifacts, events, executions, metrics, model_versions, runs
from sluice.metadata.testing import backend_id, backend_urls, fresh_store, store_url

WORKERS, STEPS = 4, 200


@pytest.fixture(params=backend_urls(), ids=backend_id)
def target(request, tmp_path):
    """(store, url) where the url lets worker processes open the same database."""
    s = fresh_store(request.param, tmp_path)
    yield s, store_url(request.param, tmp_path)
    s.close()


def _write_run(url: str, worker: int) -> str:
    """Worker process: one run of STEPS chained executions, each with an artifact and a metric."""
    store = MetadataStore.open(url)
    run = store.create_run("concurrent", {"worker": worker}, "local")
    previous = None
    for i in range(STEPS):
        ex = store.start_execution(run, f"step-{i}", "Step", f"fp-{worker}-{i}", {"i": i}, None)
        if previous is not None:
            store.record_event(ex, previous, "input", "examples")
        previous = store.add_artifact("Examples", "examples", f"/w{worker}/{i}", {"i": i}, None, producer=ex)
        store.log_metric(run, ex, "loss", float(i), step=i)
        store.finish_execution(ex, "succeeded")
        if i % 40 == 0:
            store.register_model_version("shared", f"/m/{worker}/{i}", previous, None, run)
    store.finish_run(run, "succeeded")
    store.close()
    return run


def _start_and_die(url: str) -> str:
    """Worker process: starts a run and a step, finishes nothing, exits (a runner that died)."""
    store = MetadataStore.open(url)
    run = store.create_run("fragile", {}, "local")
    done = store.start_execution(run, "gen", "ExampleGen", None, {}, None)
    store.finish_execution(done, "succeeded")
    store.start_execution(run, "train", "Trainer", None, {}, None)
    return run


def _count(store, table, *where) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))


def test_concurrent_writer_processes_lose_nothing(target):
    store, url = target
    with mp.get_context("spawn").Pool(WORKERS) as pool:
        run_ids = pool.starmap(_write_run, [(url, w) for w in range(WORKERS)])

    assert len(set(run_ids)) == WORKERS
    assert _count(store, runs) == WORKERS
    assert _count(store, executions, executions.c.status == "succeeded") == WORKERS * STEPS
    assert _count(store, artifacts) == WORKERS * STEPS
    assert _count(store, events) == WORKERS * (2 * STEPS - 1)  # outputs + chained inputs
    assert _count(store, metrics) == WORKERS * STEPS
    for run_id in run_ids:
        run = store.run(run_id)
        assert run.status == "succeeded"
        assert len(store.executions(run_id)) == STEPS
        assert [m.value for m in store.metrics(run_id, "loss")] == [float(i) for i in range(STEPS)]
        assert len(store.artifacts(run_id=run_id)) == STEPS
    # Model versions taken concurrently are unique and gapless.
    assert [v.version for v in store.model_versions("shared")] == list(range(1, WORKERS * 5 + 1))
    assert _count(store, model_versions) == WORKERS * 5
    last = store.artifacts(run_id=run_ids[0])[-1]
    assert len(store.lineage(last.id, "up").executions) == STEPS  # the whole chain


def test_mark_stale_runs_closes_runs_of_dead_runners(target):
    store, url = target
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        dead_run = pool.apply(_start_and_die, (url,))  # the pool's process exits at the end of the block
    live_run = store.create_run("fragile", {}, "local")  # this process: alive
    live_ex = store.start_execution(live_run, "gen", "ExampleGen", None, {}, None)
    foreign = store.create_run("fragile", {}, "local")
    with store.engine.begin() as conn:  # a run of another machine: its pid means nothing here
        conn.execute(runs.update().where(runs.c.id == foreign).values(host="elsewhere", pid=1))

    assert store.mark_stale_runs() == 1
    dead = store.run(dead_run)
    assert (dead.status, dead.error) == ("killed", "runner died") and dead.ended_at is not None
    assert [(e.step, e.status, e.error) for e in store.executions(dead_run)] == [
        ("gen", "succeeded", None), ("train", "failed", "runner died")]
    assert store.run(live_run).status == "running"
    assert store.execution(live_ex).status == "running"
    assert store.run(foreign).status == "running"
    assert store.mark_stale_runs() == 0  # idempotent


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)
    if sys.platform.startswith("linux") and Path("/proc/self/stat").exists():
        # Our process started after this "run" began: the pid must have been reused.
        assert not pid_alive(os.getpid(), since=datetime.now(timezone.utc) - timedelta(days=3650))
        assert pid_alive(os.getpid(), since=datetime.now(timezone.utc))
