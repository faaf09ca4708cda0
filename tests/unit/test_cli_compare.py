"""``sluice runs compare``: runs recorded in a SQLite store, compared side by side (parameters,
final metric values, differences marked), plus unknown/ambiguous ids and the unchanged run list."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sluice.cli import cli
from sluice.metadata import MetadataStore


def rows(text: str) -> dict[str, list[str]]:
    """Body rows of the rich table, keyed by their first cell."""
    out = {}
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            out[cells[0]] = cells[1:]
    return out


@pytest.fixture
def recorded(tmp_path):
    """Three runs: two of `ctr` differing in learning rate and AUC, one of `other` with no metrics."""
    db = str(tmp_path / "meta.db")
    store = MetadataStore.open(db)
    ids = []
    for lr, aucs, loss in ((0.01, [0.70, 0.75], 0.40), (0.001, [0.71, 0.72], 0.40)):
        run = store.create_run("ctr", {"learning_rate": lr, "epochs": 2, "hidden": [64, 32]})
        ex = store.start_execution(run, "trainer", "Trainer", "fp-" + run, {}, "log")
        for epoch, auc in enumerate(aucs):
            store.log_metrics(run, ex, {"eval_auc": auc, "train_loss": loss}, step=epoch)
        store.finish_execution(ex, "succeeded")
        store.finish_run(run, "succeeded")
        ids.append(run)
    other = store.create_run("other", {"epochs": 2})
    store.finish_run(other, "failed", error="boom")
    ids.append(other)
    return db, ids


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_compare_shows_params_and_final_metrics_side_by_side(recorded):
    db, (a, b, c) = recorded
    table = rows(invoke("runs", "compare", a[:8], b, c, "--store", db))
    assert table["pipeline"] == ["ctr", "ctr", "other", "*"]
    assert table["status"] == ["succeeded", "succeeded", "failed", "*"]
    assert table["param.learning_rate"] == ["0.01", "0.001", "-", "*"]
    assert table["param.epochs"] == ["2", "2", "2", ""]       # equal everywhere: not marked
    assert table["param.hidden"] == ["[64, 32]", "[64, 32]", "-", "*"]
    assert table["metric.eval_auc"] == ["0.75", "0.72", "-", "*"]  # the last epoch's value
    assert table["metric.train_loss"] == ["0.4", "0.4", "-", "*"]


def test_only_differences_and_group_store_option(recorded):
    db, (a, b, _) = recorded
    table = rows(invoke("runs", "--store", db, "compare", a, b, "--only-differences"))
    assert set(table) == {"param.learning_rate", "metric.eval_auc"}
    assert table["metric.eval_auc"] == ["0.75", "0.72", "*"]
    full = rows(invoke("runs", "--store", db, "compare", a, b))
    assert full["param.epochs"] == ["2", "2", ""] and full["metric.train_loss"] == ["0.4", "0.4", ""]


def test_runs_list_still_works_with_its_options(recorded):
    db, (a, b, c) = recorded
    listed = [r for r in rows(invoke("runs", "--store", db)).items()]
    assert [(k, v[0], v[1]) for k, v in listed] == [(c[:12], "other", "failed"), (b[:12], "ctr", "succeeded"),
                                                    (a[:12], "ctr", "succeeded")]
    only = rows(invoke("runs", "--store", db, "--pipeline", "ctr", "--limit", "1"))
    assert list(only) == [b[:12]]


def test_unknown_ambiguous_or_single_run_is_a_clear_error(recorded):
    db, (a, _, _) = recorded
    store = MetadataStore.open(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(COLUMNS="250", NO_COLOR="1")

    def fail(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "sluice.cli", "runs", "compare", *args, "--store", db],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        return proc.stderr

    assert "run 'zzzz': no run with id or prefix 'zzzz'" in fail(a, "zzzz")
    assert "at least two runs, got 1" in fail(a)
    by_first: dict[str, str] = {}
    while True:  # ids are random hex: within 17 runs two share a first character
        run = store.create_run("pad")
        if run[0] in by_first:
            break
        by_first[run[0]] = run
    assert f"run {run[0]!r}: run id prefix {run[0]!r} is ambiguous" in fail(a, run[0])
