"""kill -9 of the runner mid-pipeline: the re-run reuses completed steps and finishes,
and nothing half-written looks complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from sluice.artifacts import ArtifactStore
from sluice.metadata import MetadataStore

PIPELINE = textwrap.dedent('''
    import os, time
    from sluice import Pipeline, component, Input, Output
    from sluice.dsl import RawData, Statistics

    @component
    def first(data: Output[RawData]) -> None:
        with open(data.file("rows.txt"), "w") as f:
            f.write("\\n".join(str(i) for i in range(1000)))

    @component
    def second(data: Input[RawData], out: Output[Statistics]) -> None:
        with open(out.file("partial.txt"), "w") as f:
            f.write("half")
            f.flush()
            open("second.started", "w").close()
            if os.environ.get("SLOW") == "1":
                time.sleep(60)   # killed here
        with open(out.file("done.txt"), "w") as f:
            f.write("done")

    @component
    def third(stats: Input[Statistics], out: Output[Statistics]) -> None:
        with open(out.file("final.txt"), "w") as f:
            f.write(open(stats.file("done.txt")).read().upper())

    def pipeline() -> Pipeline:
        a = first()
        b = second(data=a.outputs.data)
        return Pipeline("resume", [a, b, third(stats=b.outputs.out)])
''')


def _sluice(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sluice.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_then_rerun_resumes(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    env = {**os.environ, "SLOW": "1"}
    proc = _sluice("run", "p.py", env=env)
    deadline = time.time() + 60
    while not os.path.exists("second.started"):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "the second step never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    store = MetadataStore.open(".sluice/metadata.db")
    artifacts = ArtifactStore(".sluice/artifacts")
    killed_run = store.runs()[0]
    assert killed_run.status == "running"  # the runner had no chance to record anything
    # Only the finished step's output is published; the killed step's files stay in hidden staging.
    published = {a.name: a for a in store.artifacts()}
    assert set(published) == {"data"} and artifacts.is_complete(published["data"].uri)
    second_dir = os.path.join(".sluice", "artifacts", "resume", "second")
    assert not os.path.exists(second_dir)
    assert any("partial.txt" in files for _, _, files in os.walk(os.path.join(".sluice", "artifacts", ".staging")))

    env["SLOW"] = "0"
    rerun = _sluice("run", "p.py", env=env)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    latest = store.runs()[0]
    states = {e.step: e.status for e in store.executions(latest.id)}
    assert states == {"first": "cached", "second": "succeeded", "third": "succeeded"}
    assert store.run(killed_run.id).status == "killed"  # the stale run was noticed and closed
    final = store.outputs_of([e for e in store.executions(latest.id) if e.step == "third"][0].id)["out"]
    assert open(os.path.join(final.uri, "final.txt")).read() == "DONE"
