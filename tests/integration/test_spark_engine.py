"""The engine contract, one suite over ``local`` and ``spark`` (real PySpark on local[2]).

Each test runs the same calls on both engines and checks the same answers;
a few Spark-only tests cover what only Spark has (dialect fixes, pickling,
atomic shard renames).
"""

from __future__ import annotations

import glob
import os
import pickle
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.engine.base import ArrowSource
from sluice.engine.dialect import QUANTILE_ACCURACY, to_spark
from sluice.engine.local import LocalEngine
from sluice.io.split_assignment import SPLIT_COLUMN, SplitAssigner

pytestmark = pytest.mark.slow


@pytest.fixture(params=["local", "spark"])
def engine(request):
    """Each engine in turn: the same suite proves they agree."""
    if request.param == "local":
        e = LocalEngine()
        yield e
        e.close()
    else:
        yield request.getfixturevalue("spark_engine")


@pytest.fixture
def table() -> pa.Table:
    n = 1000
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "x": pa.array([None if i % 50 == 0 else i * 0.25 for i in range(n)], pa.float64()),
                     "small": pa.array([i % 7 for i in range(n)], pa.int32()),
                     "f": pa.array([i / 3 for i in range(n)], pa.float32()),
                     "s": pa.array([None if i % 97 == 0 else f"v{i % 13}" for i in range(n)], pa.string())})


@pytest.fixture
def parquet_file(tmp_path, table) -> str:
    path = str(tmp_path / "in" / "data.parquet")
    os.makedirs(os.path.dirname(path))
    pq.write_table(table, path, row_group_size=300)
    return path


def _read_dir(path: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(os.path.join(path, "*.parquet")))])


def test_read_schema_count(engine, parquet_file, table):
    ds = engine.read_parquet([parquet_file])
    assert engine.schema(ds) == table.schema  # int32 / float32 stay what the file holds, as in DuckDB
    assert engine.count(ds) == 1000


def test_aggregate_select_query(engine, parquet_file, table):
    ds = engine.read_parquet([parquet_file])
    got = engine.aggregate(ds, {"n": "count(*)", "nx": 'count("x")', "sum": "sum(id)", "mx": "max(x)",
                                "nan": "sum(CASE WHEN isnan(x) THEN 1 ELSE 0 END)", "len": "max(length(s))",
                                "q": "approx_quantile(id, [0.25, 0.5, 0.75])"})
    assert (got["n"], got["nx"], got["sum"], got["mx"], got["nan"], got["len"]) == (1000, 980, 499500, 249.75, 0, 3)
    for q, v in zip([0.25, 0.5, 0.75], got["q"]):  # the rank error bound, with DuckDB's sketch inside it too
        assert abs(v - q * 999) <= 1000 / 100
    small = engine.select(ds, "SELECT id, s FROM data WHERE NOT isnan(x) AND id < 100")
    assert engine.count(small) == 98  # NULL x is neither NaN nor not-NaN: dropped on both engines
    top = engine.query(ds, "SELECT s, count(*) AS n FROM data WHERE s IS NOT NULL GROUP BY s "
                           "ORDER BY n DESC, s LIMIT 3").to_pylist()
    counts = Counter(v for v in table.column("s").to_pylist() if v is not None)
    assert [(r["s"], r["n"]) for r in top] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    nulls_last = engine.query(ds, "SELECT s FROM data GROUP BY s ORDER BY s").column("s").to_pylist()
    assert nulls_last[-1] is None  # DuckDB sorts NULLs last; the translation keeps it


def test_iter_batches_streams_every_row_in_order(engine, parquet_file, table):
    batches = list(engine.iter_batches(engine.read_parquet([parquet_file]), batch_size=128))
    assert all(b.num_rows <= 128 for b in batches)
    assert pa.Table.from_batches(batches).cast(table.schema).equals(table)


def test_map_batches_and_write_parquet(engine, parquet_file, table, tmp_path):
    ds = engine.read_parquet([parquet_file])

    def double(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([batch.column("id"), pa.array(batch.column("id").to_numpy() * 2)],
                                          names=["id", "twice"])

    out = str(tmp_path / "mapped")
    result = engine.map_batches(ds, double, out, rows_per_file=400)
    assert result.rows == 1000 and result.files == sorted(os.listdir(out))
    assert all(f.startswith("part-") and f.endswith(".parquet") for f in result.files)
    got = _read_dir(out)
    assert got.column("twice").to_pylist() == [2 * i for i in range(1000)]  # input order kept
    written = engine.write_parquet(ds, str(tmp_path / "copy"))
    assert written.rows == 1000 and _read_dir(str(tmp_path / "copy")).equals(table)


def test_write_partitioned_with_split_function(engine, parquet_file, tmp_path):
    ds = engine.read_parquet([parquet_file])
    assign = SplitAssigner({"train": 0.7, "eval": 0.3}, key="id", seed=3)
    out = str(tmp_path / "parts")
    written = engine.write_partitioned(ds, out, SPLIT_COLUMN, fn=assign)
    assert set(written) == {"train", "eval"} and sum(w.rows for w in written.values()) == 1000
    assert sorted(os.listdir(out)) == ["eval", "train"]  # no temporary folder left behind
    ids = {s: _read_dir(os.path.join(out, s)).column("id").to_pylist() for s in written}
    expected = assign(pq.read_table(parquet_file).combine_chunks().to_batches()[0])
    for split, got in ids.items():
        mask = [v == split for v in expected.column(SPLIT_COLUMN).to_pylist()]
        assert got == [i for i, keep in zip(range(1000), mask) if keep]
        assert SPLIT_COLUMN not in pq.read_schema(glob.glob(os.path.join(out, split, "*.parquet"))[0]).names


def test_read_files_csv_json_and_hive(engine, tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("id,x,name\n1,0.5,a\n2,,b\n3,2.5,\n")
    ds = engine.read_files([str(csv)], "csv", delim=",", header=True)
    assert engine.schema(ds) == pa.schema([("id", pa.int64()), ("x", pa.float64()), ("name", pa.string())])
    assert engine.query(ds, "SELECT * FROM data ORDER BY id").to_pylist()[1] == {"id": 2, "x": None, "name": "b"}
    js = tmp_path / "rows.jsonl"
    js.write_text('{"zeta": 1, "alpha": "x"}\n{"zeta": 2, "alpha": "y"}\n')
    dj = engine.read_files([str(js)], "json")
    assert engine.schema(dj).names == ["zeta", "alpha"]  # file order, not Spark's alphabetical order
    for dt in ("2026-01-01", "2026-01-02"):
        os.makedirs(tmp_path / "hive" / f"dt={dt}" / "h=3")
        pq.write_table(pa.table({"v": [1, 2]}), str(tmp_path / "hive" / f"dt={dt}" / "h=3" / "p.parquet"))
    files = sorted(glob.glob(str(tmp_path / "hive" / "*" / "*" / "*.parquet")))
    if engine.name == "spark":  # DuckDB auto-detects key=value folders unless told hive_partitioning=false
        assert engine.schema(engine.read_files(files, "parquet")).names == ["v"]
    hive = engine.read_files(files, "parquet", hive_partitioning=True)
    assert engine.count(hive) == 4
    got = engine.query(hive, "SELECT CAST(dt AS VARCHAR) AS dt, h, sum(v) AS s FROM data GROUP BY ALL ORDER BY dt"
                       if engine.name == "local" else
                       "SELECT CAST(dt AS VARCHAR) AS dt, h, sum(v) AS s FROM data GROUP BY dt, h ORDER BY dt")
    assert got.to_pylist() == [{"dt": "2026-01-01", "h": 3, "s": 3}, {"dt": "2026-01-02", "h": 3, "s": 3}]


def test_csv_rejects_agree(engine, tmp_path):
    rows = [f"{i},{i * 0.5},{'abc'[i % 3]}" for i in range(25_000)]
    rows[9] = "9,oops"                   # too few columns (and an unparsable number)
    rows[100] = "100,1.5,b,extra"        # too many columns
    rows[23_999] = "23999,notanumber,a"  # an unparsable number past DuckDB's type sample
    path = tmp_path / "bad.csv"
    path.write_text("id,x,s\n" + "\n".join(rows) + "\n")
    ds, report = engine.read_csv_checked([str(path)], delim=",", header=True)
    got = report.rejects.to_pylist()
    assert [(r["file"], r["line"]) for r in got] == [(str(path), 11), (str(path), 102), (str(path), 24001)]
    assert [set(r["error"].split(",")) for r in got] == [{"MISSING COLUMNS", "CAST"}, {"TOO MANY COLUMNS"}, {"CAST"}]
    assert got[2]["column"] == "x" and got[2]["raw"] == "23999,notanumber,a"
    assert report.rows == 24_997
    assert engine.aggregate(ds, {"n": "count(*)", "nx": "count(x)"}) == {"n": 24_997, "nx": 24_997}
    # However few columns a query reads, the rejected rows stay out (DuckDB's projection
    # pushdown would otherwise skip parsing the bad value and keep the row).
    assert engine.count(ds) == 24_997
    assert engine.aggregate(ds, {"n": "count(id)"}) == {"n": 24_997}
    assert engine.schema(ds) == pa.schema([("id", pa.int64()), ("x", pa.float64()), ("s", pa.string())])


class _Ranges(ArrowSource):
    """A picklable source: partition i yields rows [100 i, 100 i + 100)."""

    def schema(self) -> pa.Schema:
        return pa.schema([("k", pa.int64()), ("part", pa.int64())])

    def partitions(self) -> list[int]:
        return [0, 1, 2]

    def read(self, partition: int) -> Iterator[pa.RecordBatch]:
        ks = list(range(100 * partition, 100 * partition + 100))
        yield pa.RecordBatch.from_pydict({"k": ks, "part": [partition] * 100}, schema=self.schema())


def test_spark_read_arrow_reads_partitions_on_executors(spark_engine):
    ds = spark_engine.read_arrow(_Ranges())
    assert spark_engine.schema(ds) == _Ranges().schema()
    assert spark_engine.aggregate(ds, {"n": "count(*)", "s": "sum(k)", "p": "count(DISTINCT part)"}) == \
        {"n": 300, "s": sum(range(300)), "p": 3}


def test_spark_batch_functions_pickle(tmp_path):
    assign = SplitAssigner({"train": 0.5, "eval": 0.5}, key="id")
    assert pickle.loads(pickle.dumps(assign)) == assign


def test_spark_failed_job_leaves_no_complete_looking_shard(spark_engine, parquet_file, tmp_path):
    def explode(batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.num_rows and batch.column("id")[0].as_py() >= 0:
            raise ValueError("boom")
        return batch

    out = str(tmp_path / "broken")
    with pytest.raises(Exception, match="boom"):
        spark_engine.map_batches(spark_engine.read_parquet([parquet_file]), explode, out)
    assert not glob.glob(os.path.join(out, "*.parquet")) and not os.listdir(out)


def test_dialect_fixes():
    sql = to_spark('SELECT approx_quantile("x", [0.5]), isnan(x), x::HUGEINT FROM data', {"data": "v_1"})
    assert f"PERCENTILE_APPROX(`x`, ARRAY(CAST(0.5 AS DOUBLE)), {QUANTILE_ACCURACY})" in sql
    assert "CASE WHEN x IS NULL THEN NULL ELSE ISNAN(x) END" in sql
    assert "DECIMAL(38, 0)" in sql and "FROM v_1 AS data" in sql
    assert to_spark("WITH data AS (SELECT 1 AS a) SELECT a FROM data", {"data": "v"}).endswith("FROM data")


def test_import_sluice_does_not_import_pyspark():
    code = "import sys, sluice, sluice.engine, sluice.cli; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
