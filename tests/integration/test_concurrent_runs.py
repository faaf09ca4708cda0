"""Two `sluice run` processes at once, on two pipelines of 20 steps each, sharing one SQLite
metadata store: both succeed, and the store holds every run, execution, artifact, event and
metric of both, exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import sqlalchemy as sa

from sluice.artifacts import ArtifactStore
from sluice.metadata import MetadataStore
from sluice.metadata.schema import artifacts, events, executions, metrics, runs

STEPS = 20  # per pipeline

# The first step of each pipeline waits until the other pipeline's first step has started,
# so the two runs surely overlap (and write to the store) at the same time.
HEADER = textwrap.dedent('''
    import os, time
    from sluice import Pipeline, StepContext, component, Input, Output
    from sluice.dsl import RawData, Statistics

    ME, OTHER = __ME__, __OTHER__

    @component
    def source(data: Output[RawData]) -> None:
        open(ME + ".started", "w").close()
        deadline = time.time() + 60
        while not os.path.exists(OTHER + ".started"):
            if time.time() > deadline:
                raise RuntimeError("the other run never started")
            time.sleep(0.01)
        with open(data.file("v.txt"), "w") as f:
            f.write("1")

    def read(art) -> int:
        return int(open(art.file("v.txt")).read())

    def write(art, value: int) -> None:
        with open(art.file("v.txt"), "w") as f:
            f.write(str(value))
''')

# 20 steps in a chain: step i reads steps i-1 and i-2 (Fibonacci), so 1 + 2 * 18 = 37 inputs.
CHAIN = HEADER + textwrap.dedent('''
    @component
    def one(a: Input[RawData], out: Output[RawData], ctx: StepContext = None) -> None:
        write(out, read(a) + 1)
        ctx.log_metric("value", read(a) + 1)

    @component
    def two(a: Input[RawData], b: Input[RawData], out: Output[RawData], ctx: StepContext = None) -> None:
        time.sleep(0.01)
        write(out, read(a) + read(b))
        ctx.log_metric("value", read(a) + read(b))

    def pipeline(steps: int = 20) -> Pipeline:
        nodes = [source()]
        nodes.append(one(a=nodes[0].outputs.data, name="step01"))
        for i in range(2, steps):
            prev, before = nodes[-1], nodes[-2]
            b = before.outputs.data if i == 2 else before.outputs.out
            nodes.append(two(a=prev.outputs.out, b=b, name=f"step{i:02d}"))
        return Pipeline("chain", nodes)
''')

# 20 steps fanning out: 19 steps read the source and write two outputs each.
FAN = HEADER + textwrap.dedent('''
    @component
    def split(data: Input[RawData], lo: Output[Statistics], hi: Output[Statistics], k: int = 0,
              ctx: StepContext = None) -> None:
        time.sleep(0.02)
        write(lo, k)
        write(hi, k * 100 + read(data))
        ctx.log_metric("k", k)

    def pipeline(steps: int = 20) -> Pipeline:
        src = source()
        return Pipeline("fan", [src, *(split(data=src.outputs.data, k=k, name=f"split{k:02d}")
                                       for k in range(1, steps))])
''')


def _count(conn: sa.Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))


def test_two_runs_at_once_share_one_sqlite_store(workdir):
    (workdir / "chain.py").write_text(CHAIN.replace("__ME__", "'chain'").replace("__OTHER__", "'fan'"))
    (workdir / "fan.py").write_text(FAN.replace("__ME__", "'fan'").replace("__OTHER__", "'chain'"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_STORE"] = str(workdir / "shared.db")
    procs = {name: subprocess.Popen([sys.executable, "-m", "sluice.cli", "run", f"{name}.py"], cwd=workdir,
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in ("chain", "fan")}
    outputs = {name: p.communicate(timeout=120)[0] for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, f"{name}:\n{outputs[name]}"
        assert "succeeded in" in outputs[name] and f"({STEPS} steps, 0 from cache)" in outputs[name]

    store = MetadataStore.open(workdir / "shared.db")
    by_pipeline = {r.pipeline: r for r in store.runs()}
    assert set(by_pipeline) == {"chain", "fan"}
    chain, fan = by_pipeline["chain"], by_pipeline["fan"]
    assert chain.status == fan.status == "succeeded"
    assert max(chain.started_at, fan.started_at) < min(chain.ended_at, fan.ended_at)  # they overlapped

    expected = {  # executions, artifacts, input events, output events, metric points
        chain.id: (STEPS, STEPS, 1 + 2 * (STEPS - 2), STEPS, STEPS - 1),
        fan.id: (STEPS, 1 + 2 * (STEPS - 1), STEPS - 1, 1 + 2 * (STEPS - 1), STEPS - 1),
    }
    with store.engine.connect() as conn:
        assert _count(conn, runs) == 2
        assert _count(conn, executions) == 2 * STEPS
        assert _count(conn, artifacts) == sum(e[1] for e in expected.values())
        assert _count(conn, events) == sum(e[2] + e[3] for e in expected.values())
        assert _count(conn, metrics) == 2 * (STEPS - 1)
        for run_id, (n_exec, n_art, n_in, n_out, n_metrics) in expected.items():
            in_run = executions.c.run_id == run_id
            assert _count(conn, executions, in_run, executions.c.status == "succeeded") == n_exec
            produced = sa.select(executions.c.id).where(in_run)
            assert _count(conn, artifacts, artifacts.c.producer_id.in_(produced)) == n_art
            assert _count(conn, events, events.c.execution_id.in_(produced), events.c.kind == "input") == n_in
            assert _count(conn, events, events.c.execution_id.in_(produced), events.c.kind == "output") == n_out
            assert _count(conn, metrics, metrics.c.run_id == run_id) == n_metrics

    # Every step of each run is there once, wired to the right artifacts.
    chain_steps = {e.step: e for e in store.executions(chain.id)}
    assert sorted(chain_steps) == ["source", *(f"step{i:02d}" for i in range(1, STEPS))]
    fan_steps = {e.step: e for e in store.executions(fan.id)}
    assert sorted(fan_steps) == ["source", *(f"split{k:02d}" for k in range(1, STEPS))]
    assert {k: a.producer_id for k, a in store.inputs_of(chain_steps["step01"].id).items()} == {
        "a": chain_steps["source"].id}
    for i in range(2, STEPS):
        inputs = store.inputs_of(chain_steps[f"step{i:02d}"].id)
        prev = f"step{i - 1:02d}"
        before = "source" if i == 2 else f"step{i - 2:02d}"
        assert {k: a.producer_id for k, a in inputs.items()} == {
            "a": chain_steps[prev].id, "b": chain_steps[before].id}
    for k in range(1, STEPS):
        ex = fan_steps[f"split{k:02d}"]
        assert {key: a.producer_id for key, a in store.inputs_of(ex.id).items()} == {"data": fan_steps["source"].id}
        assert sorted(store.outputs_of(ex.id)) == ["hi", "lo"]

    # Every artifact is published, complete and distinct; the values went through the right wires.
    art_store = ArtifactStore(os.path.join(".sluice", "artifacts"))
    uris = [a.uri for a in store.artifacts()]
    assert len(set(uris)) == len(uris) == sum(e[1] for e in expected.values())
    assert all(art_store.is_complete(u) for u in uris)
    fib = [1, 2]
    for _ in range(2, STEPS):
        fib.append(fib[-1] + fib[-2])
    last = store.outputs_of(chain_steps[f"step{STEPS - 1:02d}"].id)["out"]
    assert open(os.path.join(last.uri, "v.txt")).read() == str(fib[-1])
    hi = store.outputs_of(fan_steps["split07"].id)["hi"]
    assert open(os.path.join(hi.uri, "v.txt")).read() == "701"
