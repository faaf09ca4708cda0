"""ExampleGen on real files: formats, deterministic splits, bad input with clear errors."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
from sluice import Pipeline
from sluice.components import ExampleGen
from sluice.io import split_files
from tests.conftest import write_csv


def _rows(n: int) -> list[str]:
    return [f"{i},{i * 0.5},{'abc'[i % 3]}" for i in range(n)]


def _read(examples, split: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in split_files(examples.path, split)])


def test_csv_split_by_key_is_deterministic_and_complete(make_runner, workdir):
    write_csv("data/a.csv", "id,x,s", _rows(3000)[:1500])
    write_csv("data/b.csv", "id,x,s", _rows(3000)[1500:])
    runner = make_runner()
    result = runner.run(Pipeline("eg", [ExampleGen(input="data/*.csv", key="id",
                                                   splits={"train": 0.7, "eval": 0.2, "test": 0.1})]))
    examples = result.output("ExampleGen", "examples")
    counts = examples.properties["splits"]
    assert sum(counts.values()) == 3000
    assert abs(counts["train"] - 2100) < 150 and abs(counts["test"] - 300) < 80
    ids = {s: set(_read(examples, s)["id"].to_pylist()) for s in counts}
    assert set().union(*ids.values()) == set(range(3000))
    assert not (ids["train"] & ids["eval"])
    # Same key -> same split, independent of how the rows were spread over files.
    write_csv("other/all.csv", "id,x,s", _rows(3000))
    again = runner.run(Pipeline("eg2", [ExampleGen(input="other/all.csv", key="id",
                                                   splits={"train": 0.7, "eval": 0.2, "test": 0.1})]))
    assert set(_read(again.output("ExampleGen", "examples"), "train")["id"].to_pylist()) == ids["train"]


def test_parquet_and_jsonl_inputs(make_runner, workdir):
    os.makedirs("pq")
    pq.write_table(pa.table({"id": list(range(100)), "v": [float(i) for i in range(100)]}), "pq/p.parquet")
    with open("rows.jsonl", "w") as f:
        for i in range(50):
            f.write(json.dumps({"id": i, "name": f"n{i}"}) + "\n")
    r1 = make_runner().run(Pipeline("pq", [ExampleGen(input="pq/")]))
    assert r1.output("ExampleGen", "examples").properties["rows"] == 100
    r2 = make_runner().run(Pipeline("js", [ExampleGen(input="rows.jsonl", splits={"train": 1.0})]))
    table = _read(r2.output("ExampleGen", "examples"), "train")
    assert sorted(table["id"].to_pylist()) == list(range(50)) and table.schema.field("name").type == pa.string()


def test_new_data_is_never_served_from_cache(make_runner, workdir):
    write_csv("data/a.csv", "id,x,s", _rows(100))
    runner = make_runner()
    assert runner.run(Pipeline("nc", [ExampleGen(input="data/*.csv")])).steps["ExampleGen"].state == "succeeded"
    assert runner.run(Pipeline("nc", [ExampleGen(input="data/*.csv")])).steps["ExampleGen"].state == "cached"
    write_csv("data/b.csv", "id,x,s", _rows(10))
    result = runner.run(Pipeline("nc", [ExampleGen(input="data/*.csv")]))
    assert result.steps["ExampleGen"].state == "succeeded"
    assert result.output("ExampleGen", "examples").properties["rows"] == 110


def test_malformed_csv_rows_fail_with_file_and_line(make_runner, workdir):
    rows = _rows(25_000)
    rows[9] = "9,oops"                   # line 11: too few columns
    rows[23_999] = "23999,notanumber,a"  # line 24001: not a number, past the rows DuckDB samples for types
    write_csv("bad.csv", "id,x,s", rows)
    result = make_runner().run(Pipeline("bad", [ExampleGen(input="bad.csv")]))
    assert result.status == "failed"
    error = result.steps["ExampleGen"].error
    assert "malformed CSV row" in error and "bad.csv, line 11" in error and "max_reject_fraction" in error
    # Tolerated when allowed: counted, written to rejects.csv, good rows kept.
    ok = make_runner().run(Pipeline("bad", [ExampleGen(input="bad.csv", max_reject_fraction=0.05)]))
    examples = ok.output("ExampleGen", "examples")
    assert examples.properties["rejected_rows"] == 2
    assert examples.properties["rows"] == 25_000 - 2
    rejects = open(examples.file("rejects.csv")).read()
    assert "bad.csv" in rejects and ",11," in rejects and ",24001," in rejects and "CAST" in rejects


def test_empty_file_missing_column_and_bad_key_are_clear(make_runner, workdir):
    open("empty.csv", "w").close()
    r = make_runner().run(Pipeline("e", [ExampleGen(input="empty.csv")]))
    assert r.status == "failed" and "empty.csv is empty" in r.steps["ExampleGen"].error
    write_csv("mc/a.csv", "id,x,s", _rows(10))
    write_csv("mc/b.csv", "id,s", ["1,a"])
    r = make_runner().run(Pipeline("m", [ExampleGen(input="mc/*.csv")]))
    assert r.status == "failed" and "b.csv lacks column(s) ['x']" in r.steps["ExampleGen"].error
    r = make_runner().run(Pipeline("k", [ExampleGen(input="mc/a.csv", key="user")]))
    assert "split key column 'user' is not in the input" in r.steps["ExampleGen"].error
    r = make_runner().run(Pipeline("n", [ExampleGen(input="nothing/*.csv")]))
    assert "no input files match 'nothing/*.csv'" in r.steps["ExampleGen"].error


def test_failed_ingest_leaves_earlier_results_intact(make_runner, workdir):
    write_csv("data/a.csv", "id,x,s", _rows(500))
    runner = make_runner()
    good = runner.run(Pipeline("keep", [ExampleGen(input="data/*.csv", key="id")]))
    examples = good.output("ExampleGen", "examples")
    before = sorted(_read(examples, "train")["id"].to_pylist())
    write_csv("data/b.csv", "id,x,s", ["1,2"])  # new file with a malformed row
    bad = runner.run(Pipeline("keep", [ExampleGen(input="data/*.csv", key="id")]))
    assert bad.status == "failed" and "b.csv, line 2" in bad.steps["ExampleGen"].error
    # The earlier artifact is untouched, complete, still recorded and still served from cache.
    assert runner.artifacts.is_complete(examples.uri)
    assert sorted(_read(examples, "train")["id"].to_pylist()) == before
    assert runner.store.artifact(examples.id).state == "live"
    os.remove("data/b.csv")
    assert runner.run(Pipeline("keep", [ExampleGen(input="data/*.csv", key="id")])).steps["ExampleGen"].state == "cached"
