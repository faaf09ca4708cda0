"""ExampleGen on real files: formats, deterministic splits, bad input with clear errors."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.csv  # noqa: F401  (pa.csv)
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


# -- incremental spans ----------------------------------------------------------------------------

def _day(day: str, ids: range, x: str = "{i}.5") -> None:
    write_csv(f"daily/dt={day}/part-0.csv", "id,x", [f"{i},{x.format(i=i)}" for i in ids])


def test_spans_ingest_only_the_latest_day(make_runner, workdir):
    runner = make_runner()
    gen = lambda **kw: ExampleGen(input="daily/dt={span}/*.csv", key="id", **kw)  # noqa: E731
    _day("2026-01-01", range(0, 100))
    day1 = runner.run(Pipeline("daily", [gen()])).output("ExampleGen", "examples")
    assert day1.properties["span"] == "2026-01-01" and day1.properties["spans"] == ["2026-01-01"]
    assert day1.properties["rows"] == 100
    _day("2026-01-02", range(100, 130))
    _day("2025-12-31", range(500, 505))  # a late backfill of an older day is not "latest"
    result = runner.run(Pipeline("daily", [gen()]))
    assert result.steps["ExampleGen"].state == "succeeded"
    day2 = result.output("ExampleGen", "examples")
    assert day2.properties["span"] == "2026-01-02" and day2.properties["rows"] == 30
    ids = []
    for split in day2.properties["splits"]:
        if day2.properties["splits"][split]:
            ids += _read(day2, split)["id"].to_pylist()
    assert sorted(ids) == list(range(100, 130))
    assert set(_read(day2, "train")["dt"].to_pylist()) == {__import__("datetime").date(2026, 1, 2)}
    # Same day again: nothing new, served from cache.
    assert runner.run(Pipeline("daily", [gen()])).steps["ExampleGen"].state == "cached"
    everything = runner.run(Pipeline("daily", [gen(span="all")])).output("ExampleGen", "examples")
    assert everything.properties["spans"] == ["2025-12-31", "2026-01-01", "2026-01-02"]
    assert everything.properties["span"] == "2026-01-02" and everything.properties["rows"] == 135
    one = runner.run(Pipeline("daily", [gen(span="2026-01-01")])).output("ExampleGen", "examples")
    assert one.properties["rows"] == 100 and one.properties["spans"] == ["2026-01-01"]


def test_spans_sort_as_numbers_not_strings(make_runner, workdir):
    for v in (9, 10, 2):
        write_csv(f"runs/{v}/data.csv", "id", [str(v)])
    examples = make_runner().run(Pipeline("n", [ExampleGen(input="runs/{span}/data.csv", splits={"all": 1.0})])
                                 ).output("ExampleGen", "examples")
    assert examples.properties["span"] == "10" and _read(examples, "all")["id"].to_pylist() == [10]


def test_span_type_change_and_missing_column_fail_clearly(make_runner, workdir):
    runner = make_runner()
    gen = lambda: ExampleGen(input="daily/dt={span}/*.csv")  # noqa: E731
    _day("2026-01-01", range(10))
    assert runner.run(Pipeline("daily", [gen()])).status == "succeeded"
    _day("2026-01-02", range(10), x="v{i}")  # x turned from numbers into text
    bad = runner.run(Pipeline("daily", [gen()]))
    error = bad.steps["ExampleGen"].error
    assert bad.status == "failed"
    assert ("span '2026-01-02': column 'x' is string in daily/dt=2026-01-02/part-0.csv but was double in "
            "span '2026-01-01'") in error
    write_csv("daily/dt=2026-01-02/part-0.csv", "id", [str(i) for i in range(10)])  # x dropped
    bad = runner.run(Pipeline("daily", [gen()]))
    assert "span '2026-01-02': column 'x' is missing in daily/dt=2026-01-02/part-0.csv" in \
        bad.steps["ExampleGen"].error


def test_span_errors_name_the_path(make_runner, workdir):
    r = make_runner().run(Pipeline("e", [ExampleGen(input="nothing/dt={span}/*.csv")]))
    assert "no input files match 'nothing/dt={span}/*.csv' for any span" in r.steps["ExampleGen"].error
    _day("2026-01-01", range(3))
    r = make_runner().run(Pipeline("e", [ExampleGen(input="daily/dt={span}/*.csv", span="2026-02-01")]))
    assert "span '2026-02-01' has no files matching 'daily/dt={span}/*.csv'; spans found: 2026-01-01" in \
        r.steps["ExampleGen"].error
    write_csv("daily/dt=2026-01-03/part-0.csv", "id,x", [])  # a header and no rows
    r = make_runner().run(Pipeline("e", [ExampleGen(input="daily/dt={span}/*.csv")]))
    assert r.status == "failed"
    assert "span '2026-01-03' of 'daily/dt={span}/*.csv' (daily/dt=2026-01-03/part-0.csv) has no data rows" in \
        r.steps["ExampleGen"].error


# -- malformed CSV rows ---------------------------------------------------------------------------

def test_bad_csv_rows_are_counted_and_written_with_exact_lines(make_runner, workdir):
    n = 25_000  # the unparsable value sits past the rows DuckDB samples to choose column types
    rows = [f"{i},{i}.5,{'abc'[i % 3]}" for i in range(n)]
    rows[4] = "4,4.5"                   # line 6: too few columns
    rows[49] = "49,49.5,b,extra"        # line 51: too many columns
    rows[23_999] = "23999,not-a-number,a"  # line 24001: unparsable double
    write_csv("bad.csv", "id,x,s", rows)
    ok = make_runner().run(Pipeline("bad", [ExampleGen(input="bad.csv", max_reject_fraction=0.0002)]))
    examples = ok.output("ExampleGen", "examples")
    assert examples.properties["rejected_rows"] == 3 and examples.properties["rows"] == n - 3
    kept = [i for s in examples.properties["splits"] for i in _read(examples, s)["id"].to_pylist()]
    assert len(kept) == n - 3 and set(range(n)) - set(kept) == {4, 49, 23_999}
    rejects = pa.csv.read_csv(examples.file("rejects.csv")).to_pylist()
    assert [(r["file"], r["line"]) for r in rejects] == [("bad.csv", 6), ("bad.csv", 51), ("bad.csv", 24001)]
    assert [r["raw"] for r in rejects] == ["4,4.5", "49,49.5,b,extra", "23999,not-a-number,a"]
    assert "MISSING COLUMNS" in rejects[0]["error"] and "TOO MANY COLUMNS" in rejects[1]["error"]
    assert "CAST" in rejects[2]["error"] and rejects[2]["column"] == "x"
    # 3 of 25,000 rows = 0.012%: over a 0.01% limit the step fails and names the first bad line.
    strict = make_runner().run(Pipeline("bad", [ExampleGen(input="bad.csv", max_reject_fraction=0.0001)]))
    assert strict.status == "failed"
    error = strict.steps["ExampleGen"].error
    assert "3 malformed CSV row(s)" in error and "bad.csv, line 6" in error and "'4,4.5'" in error
