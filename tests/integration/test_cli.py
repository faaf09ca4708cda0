"""The ``sluice`` command line, run as a real subprocess on small pipelines of custom components:
run with parameters and their errors, runs / show / lineage, --no-cache, choosing the store,
and gc (retention, --dry-run, model versions pin what they were made from)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time

from sluice.artifacts import ArtifactStore
from sluice.metadata import MetadataStore

PIPELINE = textwrap.dedent('''
    from sluice import Pipeline, component, Input, Output
    from sluice.dsl import Model, RawData, Schema, Statistics

    @component
    def make(data: Output[RawData], rows: int = 10) -> None:
        with open(data.file("rows.txt"), "w") as f:
            f.write("\\n".join(str(i) for i in range(rows)))

    @component
    def vocab(out: Output[Schema]) -> None:          # takes no parameter: reused by every later run
        with open(out.file("vocab.txt"), "w") as f:
            f.write("a b c")

    @component
    def count(data: Input[RawData], stats: Output[Statistics]) -> None:
        with open(stats.file("n.txt"), "w") as f:
            f.write(str(len(open(data.file("rows.txt")).read().splitlines())))

    @component
    def train(data: Input[RawData], stats: Input[Statistics], words: Input[Schema],
              model: Output[Model], fail: bool = False) -> None:
        if fail:
            raise ValueError("asked to fail")
        with open(model.file("model.txt"), "w") as f:
            f.write(open(stats.file("n.txt")).read() + " " + open(words.file("vocab.txt")).read())

    def pipeline(rows: int = 10, fail: bool = False) -> Pipeline:
        m = make(rows=rows)
        v = vocab()
        c = count(data=m.outputs.data)
        t = train(data=m.outputs.data, stats=c.outputs.stats, words=v.outputs.out, fail=fail)
        return Pipeline("clitest", [m, v, c, t])
''')

STEPS = {"make", "vocab", "count", "train"}
STORE = os.path.join(".sluice", "metadata.db")


def sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sluice.cli ARGS`` in the working directory; wide, plain output."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and k != "FORCE_COLOR"}
    full.update(COLUMNS="250", PYTHONIOENCODING="utf-8", NO_COLOR="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "sluice.cli", *args], cwd=os.getcwd(), env=full,
                          capture_output=True, text=True, timeout=120)


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    proc = sluice(*args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def user_error(*args: str) -> str:
    """A command that must fail cleanly: exit status 2, a message, no traceback."""
    proc = sluice(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc.stderr


def table_rows(text: str) -> list[list[str]]:
    """The body rows of rich tables in ``text``, as lists of stripped cells."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def produced_by(store: MetadataStore, run_id: str) -> dict[str, int]:
    """{step: artifact id} of the artifacts a run's executions made (not reused from the cache)."""
    out = {}
    for ex in store.executions(run_id):
        if ex.status == "succeeded":
            (art,) = store.outputs_of(ex.id).values()
            out[ex.step] = art.id
    return out


def test_help_lists_the_commands_quickly_without_importing_torch(workdir):
    started = time.perf_counter()
    proc = sluice("--help")
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.split("Commands:")[1].strip().splitlines()]
    assert {"demo", "gc", "lineage", "models", "run", "runs", "serve", "show", "validate-serving"} <= set(listed)
    assert elapsed < 1.5, f"sluice --help took {elapsed:.2f}s"

    timed = subprocess.run([sys.executable, "-X", "importtime", "-m", "sluice.cli", "--help"],
                           capture_output=True, text=True, timeout=60)
    assert timed.returncode == 0, timed.stderr
    modules = [line.rsplit("|", 1)[1].strip() for line in timed.stderr.splitlines()
               if line.startswith("import time:") and "|" in line]
    assert "click" in modules and "sluice" in modules  # importtime did report
    assert [m for m in modules if m.split(".")[0] == "torch"] == []


def test_run_with_a_param_and_bad_params(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    out = ok("run", "p.py", "--param", "rows=50")
    store = MetadataStore.open(STORE)
    (run,) = store.runs()
    assert run.status == "succeeded" and run.pipeline == "clitest"
    assert run.params == {"rows": 50}  # typed by the annotation, not the string "50"
    assert f"run {run.id} succeeded" in out and "(4 steps, 0 from cache)" in out
    data = store.outputs_of(next(e.id for e in store.executions(run.id) if e.step == "make"))["data"]
    assert len(open(os.path.join(data.uri, "rows.txt")).read().splitlines()) == 50

    err = user_error("run", "p.py", "--param", "rows=abc")
    assert err.strip() == "error: --param rows='abc': expected an integer"
    err = user_error("run", "p.py", "-p", "epochs=3")
    assert err.strip() == "error: unknown --param 'epochs'; this pipeline takes: rows=10, fail=False"
    assert len(store.runs()) == 1  # a bad parameter starts no run
    assert user_error("show", "424242").strip() == (
        "error: no run with id or prefix '424242' (no artifact with that number either; "
        "`sluice runs` lists runs)")


def test_pipeline_file_errors_are_clean(workdir):
    (workdir / "nofn.py").write_text("from sluice import Pipeline\n\nx = 1\n")
    err = user_error("run", "nofn.py")
    assert err.strip() == ("error: nofn.py defines no function named pipeline or create_pipeline "
                           "returning a Pipeline")
    (workdir / "req.py").write_text(PIPELINE.replace("def pipeline(rows: int = 10,", "def pipeline(rows: int,"))
    assert user_error("run", "req.py").strip() == "error: this pipeline needs --param rows=..."
    assert user_error("run", "req.py", "-p", "x=1").strip() == (
        "error: unknown --param 'x'; this pipeline takes: rows, fail=False")
    assert user_error("run", "req.py", "-p", "rows").strip() == (
        "error: --param 'rows' must look like key=value (e.g. --param rows=100000)")
    assert not os.path.exists(STORE)  # nothing was recorded anywhere


def test_failing_step_exits_1_and_runs_lists_both_runs(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    ok("run", "p.py")
    proc = sluice("run", "p.py", "--param", "fail=true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    store = MetadataStore.open(STORE)
    failed, good = store.runs()
    assert "train failed: ValueError: asked to fail" in proc.stdout
    assert f"log: .sluice/logs/{failed.id}/train.log" in proc.stdout
    assert "asked to fail" in open(os.path.join(".sluice", "logs", failed.id, "train.log")).read()
    assert {e.step: e.status for e in store.executions(failed.id)} == {
        "make": "cached", "vocab": "cached", "count": "cached", "train": "failed"}

    listed = [row[:3] for row in table_rows(ok("runs"))]
    assert listed == [[failed.id[:12], "clitest", "failed"], [good.id[:12], "clitest", "succeeded"]]
    assert [row[:3] for row in table_rows(ok("runs", "--pipeline", "other"))] == []
    assert user_error("lineage", "424242").strip() == "error: no artifact #424242"


def test_show_run_show_artifact_and_lineage(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    ok("run", "p.py", "-p", "rows=7")
    store = MetadataStore.open(STORE)
    (run,) = store.runs()
    made = produced_by(store, run.id)
    assert set(made) == STEPS

    out = ok("show", run.id[:12])
    assert f"run {run.id} of clitest: succeeded" in out and 'params: {"rows": 7}' in out
    steps = {row[0]: (row[1], row[3]) for row in table_rows(out)}
    assert steps == {
        "make": ("succeeded", f"#{made['make']} data: RawData"),
        "vocab": ("succeeded", f"#{made['vocab']} out: Schema"),
        "count": ("succeeded", f"#{made['count']} stats: Statistics"),
        "train": ("succeeded", f"#{made['train']} model: Model"),
    }

    model = store.artifact(made["train"])
    fields = {row[0]: row[1] for row in table_rows(ok("show", str(model.id)))}
    assert fields["type"] == "Model" and fields["output"] == "model" and fields["state"] == "live"
    assert fields["uri"] == model.uri
    assert model.uri.endswith(os.path.join("clitest", "train", "model", str(model.producer_id)))
    assert fields["made by"] == f"step train (execution {model.producer_id}) of run {run.id}"
    assert open(os.path.join(fields["uri"], "model.txt")).read() == "7 a b c"

    producer = re.compile(r"(\w+) \(execution (\d+), run (\w+), \w+\)")
    up = ok("lineage", str(model.id))  # both directions: nothing was made from the model
    up, down = up.split("(used by)")
    assert down.strip() == ""
    assert {m.group(1) for m in producer.finditer(up)} == STEPS
    assert {m.group(3) for m in producer.finditer(up)} == {run.id}
    for step, key in (("make", "data"), ("count", "stats"), ("vocab", "words")):
        art = store.artifact(made[step])
        assert f"{key}: #{art.id} {art.type} ({art.name})" in up
    down = ok("lineage", str(made["make"]), "--direction", "down")
    # count and train read the data; train again below count, through count's stats.
    assert re.findall(r"(\w+) \(execution \d+, run \w+, (\w+)\)", down) == [
        ("count", "succeeded"), ("train", "succeeded"), ("train", "succeeded")]
    assert f"stats: #{made['count']} Statistics (stats)" in down
    assert f"model: #{made['train']} Model (model)" in down


def test_no_cache_reruns_every_step(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    ok("run", "p.py")
    assert "(4 steps, 4 from cache)" in ok("run", "p.py")
    assert "(4 steps, 0 from cache)" in ok("run", "p.py", "--no-cache")
    store = MetadataStore.open(STORE)
    nocache, cached, first = store.runs()
    assert {e.step: e.status for e in store.executions(first.id)} == dict.fromkeys(STEPS, "succeeded")
    assert {e.step: e.status for e in store.executions(cached.id)} == dict.fromkeys(STEPS, "cached")
    execs = store.executions(nocache.id)
    assert {e.step: e.status for e in execs} == dict.fromkeys(STEPS, "succeeded")
    assert all(e.cached_from is None for e in execs)
    # Fresh outputs, not the first run's.
    assert set(produced_by(store, nocache.id).values()).isdisjoint(produced_by(store, first.id).values())
    assert len(store.artifacts()) == 8


def test_store_from_env_and_flag(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    ok("run", "p.py", env={"SLUICE_STORE": "other.db"})
    ok("run", "p.py", "--store", "third.db", "-p", "rows=3", env={"SLUICE_STORE": "other.db"})  # flag wins
    assert not os.path.exists(STORE)
    other, third = MetadataStore.open("other.db"), MetadataStore.open("third.db")
    assert [(r.pipeline, r.status, r.params) for r in other.runs()] == [("clitest", "succeeded", {})]
    assert [(r.pipeline, r.status, r.params) for r in third.runs()] == [("clitest", "succeeded", {"rows": 3})]
    # A separate store has a separate cache: the second run ran every step.
    assert {e.status for e in third.executions(third.runs()[0].id)} == {"succeeded"}
    listed = table_rows(ok("runs", env={"SLUICE_STORE": "other.db"}))
    assert [row[:3] for row in listed] == [[other.runs()[0].id[:12], "clitest", "succeeded"]]


def _three_runs() -> tuple[MetadataStore, list[str]]:
    for rows in (10, 20, 30):
        ok("run", "p.py", "-p", f"rows={rows}")
    store = MetadataStore.open(STORE)
    newest_first = [r.id for r in store.runs()]
    assert [store.run(r).params["rows"] for r in newest_first] == [30, 20, 10]
    return store, newest_first[::-1]


def test_gc_keeps_the_newest_run_and_what_it_uses(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    store, (r1, r2, r3) = _three_runs()
    made = {r: produced_by(store, r) for r in (r1, r2, r3)}
    assert [set(made[r]) for r in (r1, r2, r3)] == [STEPS, STEPS - {"vocab"}, STEPS - {"vocab"}]
    artifacts = ArtifactStore(os.path.join(".sluice", "artifacts"))
    everything = {a.id: a.uri for a in store.artifacts()}
    assert len(everything) == 10
    # The newest run reused run 1's vocab from the cache, so it must stay.
    doomed = {made[r1]["make"], made[r1]["count"], made[r1]["train"], *made[r2].values()}
    kept = set(everything) - doomed
    assert kept == {made[r1]["vocab"], *made[r3].values()}

    out = ok("gc", "--keep-runs", "1", "--dry-run")
    assert {int(i) for i in re.findall(r"would delete #(\d+) ", out)} == doomed
    assert "deleted" not in out and "deleting" not in out
    assert {a.id for a in store.artifacts()} == set(everything)
    assert all(artifacts.is_complete(uri) for uri in everything.values())

    out = ok("gc", "--keep-runs", "1")
    assert {int(i) for i in re.findall(r"deleting #(\d+) ", out)} == doomed
    assert "deleted 6 artifact(s), 0 abandoned staging folder(s)" in out
    assert {a.id for a in store.artifacts()} == kept
    for aid in doomed:
        assert not os.path.exists(everything[aid])
    for aid in kept:
        assert artifacts.is_complete(everything[aid])
    assert {e.step: e.status for e in store.executions(r3)} == {
        "make": "succeeded", "vocab": "cached", "count": "succeeded", "train": "succeeded"}


def test_gc_never_deletes_what_a_model_version_depends_on(workdir):
    (workdir / "p.py").write_text(PIPELINE)
    store, (r1, r2, r3) = _three_runs()
    made = {r: produced_by(store, r) for r in (r1, r2, r3)}
    old_model = store.artifact(made[r1]["train"])
    assert store.register_model_version("clitest", old_model.uri, artifact_id=None,
                                        source_model_id=old_model.id, run_id=r1) == 1
    everything = {a.id: a.uri for a in store.artifacts()}

    out = ok("gc", "--keep-runs", "1")
    doomed = set(made[r2].values())  # only run 2 is unprotected
    assert {int(i) for i in re.findall(r"deleting #(\d+) ", out)} == doomed
    assert "deleted 3 artifact(s)" in out
    assert {a.id for a in store.artifacts()} == set(everything) - doomed
    artifacts = ArtifactStore(os.path.join(".sluice", "artifacts"))
    for aid in made[r1].values():  # the registered model and everything upstream of it
        assert artifacts.is_complete(everything[aid])
    for aid in doomed:
        assert not os.path.exists(everything[aid])

    # The model's run is still whole in the cache: re-running its parameters runs nothing.
    assert "(4 steps, 4 from cache)" in ok("run", "p.py", "-p", "rows=10")
