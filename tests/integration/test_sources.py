"""Sources on real things: ORC and Hive folders, SQLite and PostgreSQL, Delta tables, S3 (moto server).

Every test checks values (counts, sums of ids, partition columns), not only that nothing raised.
PostgreSQL tests read ``SLUICE_TEST_POSTGRES_URL`` and are skipped when it is unset.
"""

from __future__ import annotations

import datetime
import io
import os
import pickle
import socket
import uuid

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from sluice import Pipeline
from sluice.components import ExampleGen
from sluice.engine.base import ArrowSource
from sluice.engine.local import LocalEngine
from sluice.errors import DataError
from sluice.io import DeltaSource, FileSource, ObjectStoreSource, SqlSource, read_source, split_files
from tests.conftest import write_csv

POSTGRES_URL = os.environ.get("SLUICE_TEST_POSTGRES_URL")


@pytest.fixture
def engine():
    e = LocalEngine(threads=4)
    yield e
    e.close()


def _examples_table(examples) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for s in examples.properties["splits"]
                             for f in split_files(examples.path, s)])


# -- files: ORC, Hive folders, type consistency ---------------------------------------------------

def test_orc_in_hive_folders_through_example_gen(make_runner, workdir):
    for day, ids in (("2026-01-01", range(0, 60)), ("2026-01-02", range(60, 100))):
        os.makedirs(f"orc/dt={day}")
        orc.write_table(pa.table({"id": list(ids), "x": [i * 0.5 for i in ids]}), f"orc/dt={day}/part-0.orc")
    result = make_runner().run(Pipeline("orc", [ExampleGen(input="orc/", key="id")]))
    examples = result.output("ExampleGen", "examples")
    assert examples.properties["rows"] == 100 and examples.properties["format"] == "orc"
    assert examples.properties["columns"] == {"id": "int64", "x": "double", "dt": "date32[day]"}
    table = _examples_table(examples)
    by_id = dict(zip(table["id"].to_pylist(), table["dt"].to_pylist()))
    assert sorted(by_id) == list(range(100))
    assert by_id[5] == datetime.date(2026, 1, 1) and by_id[75] == datetime.date(2026, 1, 2)
    assert sum(table["x"].to_pylist()) == sum(i * 0.5 for i in range(100))


def test_hive_partition_values_become_columns(engine, workdir):
    for dt, region in (("2026-01-01", "eu"), ("2026-01-02", "us")):
        os.makedirs(f"pq/dt={dt}/region={region}")
        pq.write_table(pa.table({"id": [1, 2]}), f"pq/dt={dt}/region={region}/part-0.parquet")
        write_csv(f"csv/h={dt[-1]}/part-0.csv", "id,s", ["1,a", "2,b"])
    ds, _ = read_source(engine, FileSource.resolve("pq/**/*.parquet"))
    rows = engine.query(ds, "SELECT dt, region, sum(id) AS s FROM data GROUP BY ALL ORDER BY dt").to_pylist()
    assert rows == [{"dt": datetime.date(2026, 1, 1), "region": "eu", "s": 3},
                    {"dt": datetime.date(2026, 1, 2), "region": "us", "s": 3}]
    ds, report = read_source(engine, FileSource.resolve("csv/*/*.csv"))
    assert report.rejects.num_rows == 0
    assert engine.query(ds, "SELECT h, count(*) AS n FROM data GROUP BY h ORDER BY h").to_pylist() == \
        [{"h": 1, "n": 2}, {"h": 2, "n": 2}]


def test_column_type_differences_between_files_name_both_files(engine, workdir):
    os.makedirs("pq")
    pq.write_table(pa.table({"id": [1, 2], "v": [1, 2]}), "pq/a.parquet")
    pq.write_table(pa.table({"id": [3], "v": ["three"]}), "pq/b.parquet")
    with pytest.raises(DataError, match=r"column 'v' has type int64 in pq/a.parquet but string in pq/b.parquet"):
        read_source(engine, FileSource.resolve("pq/*.parquet"))
    write_csv("csv/a.csv", "id,v", ["1,10", "2,20"])
    write_csv("csv/b.csv", "id,v", ["3,x", "4,y"])
    with pytest.raises(DataError, match=r"column 'v' has type BIGINT in csv/a.csv but text in csv/b.csv .*'x'"):
        read_source(engine, FileSource.resolve("csv/*.csv"))
    # Integer in one CSV file, decimals in another: one numeric column, nothing truncated.
    write_csv("num/a.csv", "id,v", ["1,10", "2,20"])
    write_csv("num/b.csv", "id,v", ["3,2.5", "4,"])
    ds, report = read_source(engine, FileSource.resolve("num/*.csv"))
    assert report.rejects.num_rows == 0
    assert engine.query(ds, "SELECT v FROM data ORDER BY id")["v"].to_pylist() == [10.0, 20.0, 2.5, None]


# -- the engine's read_arrow ----------------------------------------------------------------------

class _Ranges(ArrowSource):
    """Partition p yields ids p*1000 .. p*1000+n-1 in batches of 100."""

    def __init__(self, parts: int, n: int = 250) -> None:
        self.parts, self.n = parts, n

    def schema(self) -> pa.Schema:
        return pa.schema([("id", pa.int64()), ("s", pa.string())])

    def partitions(self) -> list[int]:
        return list(range(self.parts))

    def read(self, p: int):
        ids = list(range(p * 1000, p * 1000 + self.n))
        for i in range(0, len(ids), 100):
            chunk = ids[i:i + 100]
            yield pa.record_batch([pa.array(chunk, pa.int32()), pa.array([str(x) for x in chunk])], names=["id", "s"])


def test_read_arrow_reads_every_partition_once_and_keeps_the_schema_when_empty(engine):
    ds = engine.read_arrow(_Ranges(9))
    assert engine.count(ds) == 9 * 250
    assert engine.aggregate(ds, {"s": "sum(id)"})["s"] == sum(p * 1000 * 250 + 249 * 250 // 2 for p in range(9))
    assert engine.schema(ds).field("id").type == pa.int64()  # batches cast to the declared schema
    assert engine.query(ds, "SELECT id FROM data LIMIT 3")["id"].to_pylist() == [0, 1, 2]  # partition order
    empty = engine.read_arrow(_Ranges(0))
    assert engine.count(empty) == 0 and engine.schema(empty).names == ["id", "s"]


# -- SQL databases --------------------------------------------------------------------------------

def _make_orders(url: str, table: str) -> tuple[int, int]:
    """Rows with skewed keys (most ids small, a few huge), NULL keys, and several column types."""
    import sqlalchemy as sa

    meta = sa.MetaData()
    t = sa.Table(table, meta, sa.Column("id", sa.BigInteger), sa.Column("amount", sa.Numeric(10, 2)),
                 sa.Column("ratio", sa.Float), sa.Column("name", sa.String(20)), sa.Column("ok", sa.Boolean),
                 sa.Column("day", sa.Date), sa.Column("at", sa.DateTime))
    ids = [*range(1, 1801), *range(10**9, 10**9 + 5), *([None] * 37)]
    rows = [{"id": i, "amount": (n % 100) + 0.25, "ratio": n / 7, "name": f"n{n}", "ok": n % 2 == 0,
             "day": datetime.date(2026, 1, 1 + n % 28), "at": datetime.datetime(2026, 1, 1, n % 24)}
            for n, i in enumerate(ids)]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(t.insert(), rows)
    engine.dispose()
    return len(ids), sum(i for i in ids if i is not None)


def _drop(url: str, table: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="SLUICE_TEST_POSTGRES_URL is not set"))])
def sql_table(request, tmp_path):
    """(url, table, rows, sum of ids) on a fresh table of a real database."""
    url = f"sqlite:///{tmp_path / 'shop.db'}" if request.param == "sqlite" else POSTGRES_URL
    table = f"orders_{uuid.uuid4().hex[:8]}"
    rows, id_sum = _make_orders(url, table)
    yield url, table, rows, id_sum
    _drop(url, table)


@pytest.mark.parametrize("num_partitions", [1, 4, 7])
def test_sql_table_rows_arrive_exactly_once(engine, sql_table, num_partitions):
    url, table, rows, id_sum = sql_table
    source = SqlSource(url, table=table, partition_column="id", num_partitions=num_partitions, batch_size=500)
    source = pickle.loads(pickle.dumps(source))  # what Spark executors get
    parts = source.partitions()
    assert parts[-1] == {"null": True} and len(parts) == num_partitions + 1
    ds = engine.read_arrow(source)
    got = engine.aggregate(ds, {"n": "count(*)", "s": "sum(id)", "nulls": "count(*) - count(id)",
                                "distinct": "count(DISTINCT id)"})
    assert got == {"n": rows, "s": id_sum, "nulls": 37, "distinct": rows - 37}
    assert dict(zip(engine.schema(ds).names, map(str, engine.schema(ds).types))) == {
        "id": "int64", "amount": "double", "ratio": "double", "name": "string", "ok": "bool",
        "day": "date32[day]", "at": "timestamp[us]"}
    first = engine.query(ds, "SELECT * FROM data WHERE id = 3").to_pylist()[0]
    assert first == {"id": 3, "amount": 2.25, "ratio": 2 / 7, "name": "n2", "ok": True,
                     "day": datetime.date(2026, 1, 3), "at": datetime.datetime(2026, 1, 1, 2)}


def test_sql_query_source_and_errors(engine, sql_table):
    url, table, rows, id_sum = sql_table
    source = SqlSource(url, query=f'SELECT id, name FROM "{table}" WHERE id <= 100 OR id IS NULL',
                       partition_column="id", num_partitions=3)
    ds = engine.read_arrow(source)
    assert engine.aggregate(ds, {"n": "count(*)", "s": "sum(id)"}) == {"n": 137, "s": 5050}
    assert engine.schema(ds).names == ["id", "name"]
    with pytest.raises(DataError, match="partition_column 'name' .* has type string; choose an integer"):
        SqlSource(url, table=table, partition_column="name").partitions()
    with pytest.raises(DataError, match="no table 'missing'"):
        SqlSource(url, table="missing").schema()


@pytest.mark.skipif(not POSTGRES_URL, reason="SLUICE_TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("sql_table", ["postgresql"], indirect=True)
def test_postgres_password_never_shown(make_runner, sql_table):
    import sqlalchemy as sa

    url, table, rows, _ = sql_table
    secret = f":{sa.engine.make_url(url).password}@"  # the user name may equal the password
    source = SqlSource(url, table=table, partition_column="id")
    assert secret not in repr(source) and secret not in str(source.describe())
    runner = make_runner()
    result = runner.run(Pipeline("pg", [ExampleGen(input=source, key="id")]))
    examples = result.output("ExampleGen", "examples")
    assert examples.properties["rows"] == rows
    assert secret not in str(examples.properties) and ":***@" in examples.properties["source"]["url"]
    execution = runner.store.executions(result.run_id)[0]
    assert secret not in str(execution.parameters) and secret not in open(result.steps["ExampleGen"].log_path).read()
    wrong = sa.engine.make_url(url).set(password="not-the-password-42")
    bad = SqlSource(wrong.render_as_string(hide_password=False), table=table)
    with pytest.raises(DataError) as err:
        bad.fingerprint()
    assert "not-the-password-42" not in str(err.value) and "***" in str(err.value)


def test_sql_example_gen_fingerprint_sees_new_rows(make_runner, sql_table):
    import sqlalchemy as sa

    url, table, rows, _ = sql_table
    runner = make_runner()
    gen = lambda: ExampleGen(input=SqlSource(url, table=table, partition_column="id"), key="id")  # noqa: E731
    first = runner.run(Pipeline("sql", [gen()]))
    assert first.output("ExampleGen", "examples").properties["rows"] == rows
    assert first.output("ExampleGen", "examples").properties["source"]["table"] == table
    assert runner.run(Pipeline("sql", [gen()])).steps["ExampleGen"].state == "cached"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'INSERT INTO "{table}" (id, name) VALUES (5000, \'new\')'))
    engine.dispose()
    again = runner.run(Pipeline("sql", [gen()]))
    assert again.steps["ExampleGen"].state == "succeeded"
    assert again.output("ExampleGen", "examples").properties["rows"] == rows + 1


# -- Delta Lake -----------------------------------------------------------------------------------

def test_delta_latest_version_and_time_travel(make_runner, engine, workdir):
    from deltalake import write_deltalake

    write_deltalake("lake/clicks", pa.table({"id": [1, 2, 3], "country": ["de", "fr", "de"]}),
                    partition_by=["country"])
    write_deltalake("lake/clicks", pa.table({"id": [4, 5], "country": ["us", "de"]}), mode="append")
    latest = DeltaSource("lake/clicks")
    ds = engine.read_arrow(latest)
    assert engine.query(ds, "SELECT country, sum(id) AS s FROM data GROUP BY country ORDER BY country"
                        ).to_pylist() == [{"country": "de", "s": 9}, {"country": "fr", "s": 2},
                                          {"country": "us", "s": 4}]
    assert latest.version == 1 and len(latest.partitions()) == 4  # one data file per (commit, partition)
    v0 = engine.read_arrow(DeltaSource("lake/clicks", version=0))
    assert sorted(engine.query(v0, "SELECT id FROM data")["id"].to_pylist()) == [1, 2, 3]
    assert DeltaSource("lake/clicks", version=0).fingerprint() != DeltaSource("lake/clicks").fingerprint()

    runner = make_runner()
    result = runner.run(Pipeline("delta", [ExampleGen(input=DeltaSource("lake/clicks"), key="id")]))
    props = result.output("ExampleGen", "examples").properties
    assert props["rows"] == 5 and props["source"] == {"type": "delta", "path": "lake/clicks", "version": 1}
    assert runner.run(Pipeline("delta", [ExampleGen(input=DeltaSource("lake/clicks"), key="id")])
                      ).steps["ExampleGen"].state == "cached"
    write_deltalake("lake/clicks", pa.table({"id": [6], "country": ["fr"]}), mode="append")
    newer = runner.run(Pipeline("delta", [ExampleGen(input=DeltaSource("lake/clicks"), key="id")]))
    assert newer.steps["ExampleGen"].state == "succeeded"
    assert newer.output("ExampleGen", "examples").properties["rows"] == 6
    with pytest.raises(DataError, match="no Delta table at 'lake/none'"):
        DeltaSource("lake/none").fingerprint()


# -- S3 (moto server) -----------------------------------------------------------------------------

@pytest.fixture
def s3(monkeypatch):
    """A moto S3 server on 127.0.0.1 with bucket ``lake``; yields a boto3 client."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    client = boto3.client("s3")
    client.create_bucket(Bucket="lake")
    yield client
    server.stop()


def _put_parquet(client, key: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    client.put_object(Bucket="lake", Key=key, Body=buf.getvalue())


def test_s3_parquet_glob_with_hive_folders(make_runner, s3, engine):
    _put_parquet(s3, "clicks/dt=2026-01-01/part-0.parquet", pa.table({"id": [1, 2, 3]}))
    _put_parquet(s3, "clicks/dt=2026-01-02/part-0.parquet", pa.table({"id": [4, 5]}))
    s3.put_object(Bucket="lake", Key="clicks/dt=2026-01-02/_SUCCESS", Body=b"")
    source = ObjectStoreSource("s3://lake/clicks/dt=*/*.parquet")
    assert [name for name, _, _ in source.files()] == ["lake/clicks/dt=2026-01-01/part-0.parquet",
                                                        "lake/clicks/dt=2026-01-02/part-0.parquet"]
    ds = engine.read_arrow(pickle.loads(pickle.dumps(source)))
    assert engine.query(ds, "SELECT dt, sum(id) AS s FROM data GROUP BY dt ORDER BY dt").to_pylist() == [
        {"dt": datetime.date(2026, 1, 1), "s": 6}, {"dt": datetime.date(2026, 1, 2), "s": 9}]

    runner = make_runner()
    run = lambda: runner.run(Pipeline("s3", [ExampleGen(input="s3://lake/clicks/", key="id")]))  # noqa: E731
    props = run().output("ExampleGen", "examples").properties
    assert props["rows"] == 5 and props["source"]["uri"] == "s3://lake/clicks/" and props["format"] == "parquet"
    assert run().steps["ExampleGen"].state == "cached"
    _put_parquet(s3, "clicks/dt=2026-01-03/part-0.parquet", pa.table({"id": [6]}))
    again = run()
    assert again.steps["ExampleGen"].state == "succeeded"
    assert again.output("ExampleGen", "examples").properties["rows"] == 6


def test_s3_csv_and_missing_prefix(make_runner, s3, engine):
    s3.put_object(Bucket="lake", Key="raw/a.csv", Body=b"id,name\n1,x\n2,y\n")
    s3.put_object(Bucket="lake", Key="raw/b.csv", Body=b"id,name\n3,z\n")
    result = make_runner().run(Pipeline("csv", [ExampleGen(input="s3://lake/raw/*.csv", splits={"all": 1.0})]))
    table = _examples_table(result.output("ExampleGen", "examples"))
    assert sorted(zip(table["id"].to_pylist(), table["name"].to_pylist())) == [(1, "x"), (2, "y"), (3, "z")]
    missing = make_runner().run(Pipeline("none", [ExampleGen(input="s3://lake/nothing/*.csv")]))
    assert missing.status == "failed" and "no objects match s3://lake/nothing/*.csv" in missing.steps["ExampleGen"].error


# -- the same sources on Spark ----------------------------------------------------------------------

def test_sql_source_on_spark_reads_partitions_as_tasks(spark_engine, sql_table):
    url, table, rows, id_sum = sql_table
    ds = spark_engine.read_arrow(SqlSource(url, table=table, partition_column="id", num_partitions=3))
    got = spark_engine.aggregate(ds, {"n": "count(*)", "s": "sum(id)", "nulls": "count(*) - count(id)"})
    assert got == {"n": rows, "s": id_sum, "nulls": 37}
    assert spark_engine.query(ds, "SELECT name, ratio FROM data WHERE id = 3").to_pylist() == [
        {"name": "n2", "ratio": 2 / 7}]


def test_orc_in_hive_folders_on_spark(spark_engine, tmp_path):
    import pyarrow.orc as orc

    for day, values in (("2026-01-01", [1, 2]), ("2026-01-02", [30])):
        os.makedirs(tmp_path / f"dt={day}")
        orc.write_table(pa.table({"v": values}), str(tmp_path / f"dt={day}" / "part-0.orc"))
    files = sorted(str(p) for p in tmp_path.glob("dt=*/*.orc"))
    ds = spark_engine.read_files(files, "orc", hive_partitioning=True)
    got = spark_engine.query(ds, "SELECT CAST(dt AS VARCHAR) AS dt, sum(v) AS s FROM data GROUP BY dt ORDER BY dt")
    assert got.to_pylist() == [{"dt": "2026-01-01", "s": 3}, {"dt": "2026-01-02", "s": 30}]
