"""The local runner: order, concurrency, caching, retries, failures, per-step logs, metrics."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from sluice import Input, Output, Pipeline, StepContext, component
from sluice.dsl import Artifact, RawData, Statistics

CALLS: dict[str, int] = {}
FLAKY = {"failures_left": 0}
ACTIVE = {"now": 0, "peak": 0}
_lock = threading.Lock()


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@component
def source(data: Output[RawData], text: str = "hello") -> None:
    _count("source")
    with open(data.file("data.txt"), "w") as f:
        f.write(text)


@component
def upper(data: Input[RawData], out: Output[Statistics], suffix: str = "") -> None:
    _count("upper")
    with open(out.file("out.txt"), "w") as f:
        f.write(open(data.file("data.txt")).read().upper() + suffix)


@component
def length(data: Input[RawData], out: Output[Statistics]) -> None:
    _count("length")
    with open(out.file("len.txt"), "w") as f:
        f.write(str(len(open(data.file("data.txt")).read())))


@component
def slow(data: Input[RawData], out: Output[Artifact], tag: str = "") -> None:
    with _lock:
        ACTIVE["now"] += 1
        ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
    time.sleep(0.4)
    with _lock:
        ACTIVE["now"] -= 1


@component
def flaky(data: Input[RawData], out: Output[Artifact], ctx: StepContext = None) -> None:
    _count("flaky")
    if FLAKY["failures_left"] > 0:
        FLAKY["failures_left"] -= 1
        raise ConnectionError("transient failure")
    print("printed by flaky")
    ctx.log.info("logged by flaky")
    for epoch in range(3):
        ctx.log_metric("loss", 1.0 / (epoch + 1), epoch)


@component
def downstream(x: Input[Artifact], out: Output[Artifact]) -> None:
    _count("downstream")


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    FLAKY["failures_left"] = 0
    ACTIVE.update(now=0, peak=0)


def _pipeline(text: str = "hello", suffix: str = "", cache_upper: bool = True) -> Pipeline:
    s = source(text=text)
    u = upper(data=s.outputs.data, suffix=suffix, cache=cache_upper)
    n = length(data=s.outputs.data)
    return Pipeline("demo", [s, u, n])


def test_runs_in_order_and_second_run_is_fully_cached(make_runner):
    runner = make_runner()
    first = runner.run(_pipeline())
    assert first.status == "succeeded"
    assert open(first.output("upper", "out").file("out.txt")).read() == "HELLO"
    assert CALLS == {"source": 1, "upper": 1, "length": 1}
    second = runner.run(_pipeline())
    assert {s.state for s in second.steps.values()} == {"cached"}
    assert CALLS == {"source": 1, "upper": 1, "length": 1}
    assert second.output("upper", "out").uri == first.output("upper", "out").uri
    execs = runner.store.executions(second.run_id)
    assert {e.status for e in execs} == {"cached"} and all(e.cached_from for e in execs)


def test_changed_parameter_reruns_only_that_step_and_dependents(make_runner):
    runner = make_runner()
    runner.run(_pipeline())
    result = runner.run(_pipeline(suffix="!"))
    states = {n: s.state for n, s in result.steps.items()}
    assert states == {"source": "cached", "upper": "succeeded", "length": "cached"}
    assert open(result.output("upper", "out").file("out.txt")).read() == "HELLO!"
    result = runner.run(_pipeline(text="bye"))
    assert {n: s.state for n, s in result.steps.items()} == {
        "source": "succeeded", "upper": "succeeded", "length": "succeeded"}


def test_no_cache_and_per_component_switch_rerun_visibly(make_runner):
    make_runner().run(_pipeline())
    result = make_runner(cache=False).run(_pipeline())
    assert {s.state for s in result.steps.values()} == {"succeeded"}
    result = make_runner().run(_pipeline(cache_upper=False))
    assert {n: s.state for n, s in result.steps.items()} == {
        "source": "cached", "upper": "succeeded", "length": "cached"}


def test_cache_hit_requires_outputs_to_still_exist(make_runner):
    runner = make_runner()
    first = runner.run(_pipeline())
    shutil.rmtree(first.output("length", "out").path)
    result = runner.run(_pipeline())
    assert result.steps["length"].state == "succeeded"
    assert result.steps["upper"].state == "cached"


def test_independent_steps_run_concurrently(make_runner):
    s = source()
    steps = [slow(data=s.outputs.data, tag=str(i), name=f"slow{i}") for i in range(3)]
    result = make_runner(max_parallel=3).run(Pipeline("par", [s, *steps]))
    assert result.status == "succeeded"
    assert ACTIVE["peak"] >= 2


def test_retries_with_backoff_then_success_logs_and_metrics(make_runner):
    FLAKY["failures_left"] = 2
    s = source()
    runner = make_runner(retries=2, retry_backoff_s=0.05)
    result = runner.run(Pipeline("retry", [s, flaky(data=s.outputs.data)]))
    assert result.status == "succeeded"
    assert CALLS["flaky"] == 3
    ex = [e for e in runner.store.executions(result.run_id) if e.step == "flaky"][0]
    assert ex.attempts == 3
    log = open(result.steps["flaky"].log_path).read()
    assert "attempt 1 failed" in log and "transient failure" in log
    assert "printed by flaky" in log and "logged by flaky" in log
    losses = [(m.step, round(m.value, 3)) for m in runner.store.metrics(result.run_id, "loss")]
    assert losses == [(0, 1.0), (1, 0.5), (2, 0.333)]


def test_failure_skips_dependents_and_fails_the_run(make_runner):
    FLAKY["failures_left"] = 5
    s = source()
    f = flaky(data=s.outputs.data)
    after = length(data=s.outputs.data, name="independent")
    runner = make_runner(retries=0)
    result = runner.run(Pipeline("fail", [s, f, after, downstream(x=f.outputs.out)]))
    assert result.steps["downstream"].state == "skipped" and "downstream" not in CALLS
    assert result.status == "failed"
    assert result.steps["flaky"].state == "failed"
    assert "ConnectionError: transient failure" in result.steps["flaky"].error
    assert result.steps["independent"].state == "succeeded"
    run = runner.store.run(result.run_id)
    assert run.status == "failed" and "transient failure" in run.error
    # A failed step leaves no published output and no staging leftovers.
    assert not os.listdir(os.path.join(runner.artifacts.root, ".staging"))


@pytest.mark.skipif(not os.environ.get("SLUICE_TEST_POSTGRES_URL"), reason="SLUICE_TEST_POSTGRES_URL not set")
def test_the_runner_works_the_same_on_a_postgres_store(workdir):
    import uuid

    from sluice.artifacts import ArtifactStore
    from sluice.metadata import MetadataStore
    from sluice.runner import LocalRunner

    store = MetadataStore.open(os.environ["SLUICE_TEST_POSTGRES_URL"])
    runner = LocalRunner(store, ArtifactStore(str(workdir / "artifacts")), progress=False,
                         log_dir=str(workdir / "logs"))
    # The database outlives this test and caching is content-addressed across pipelines:
    # unique data keeps this run's steps apart from earlier runs'.
    name = f"pg-{uuid.uuid4().hex[:8]}"

    def pipe(suffix: str) -> Pipeline:
        s = source(text=f"hello {name}")
        return Pipeline(name, [s, upper(data=s.outputs.data, suffix=suffix), length(data=s.outputs.data)])

    first = runner.run(pipe(""))
    assert first.status == "succeeded"
    assert open(first.output("upper", "out").file("out.txt")).read() == f"HELLO {name.upper()}"
    again = runner.run(pipe("?"))
    assert {n: s.state for n, s in again.steps.items()} == {
        "source": "cached", "upper": "succeeded", "length": "cached"}
    art = again.output("upper", "out")
    assert {e.step for e in store.lineage(art.id, direction="up").executions.values()} == {"upper", "source"}
