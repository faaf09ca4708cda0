"""Hand-written DuckDB SQL, as an engineer who knows DuckDB would write it.

Statistics of every column: ONE aggregate pass over the Parquet files (row count; per
numeric column - user_id, timestamp, label, I1..I13 - count, mean, population std, min,
max, zeros and approximate deciles; per string column count and min/avg/max length) plus ONE value-counts query (a UNION ALL of per-column
GROUP BYs, ranked: top 10 values and the exact distinct count of every string column).
No histograms (Sluice computes them in an extra pass).

Transform: fit = one aggregate (mean, population std of ``ln(1 + max(coalesce(x, 0), 0))``)
+ one vocabulary query (top 20,000 per column, ties by value); apply = one SQL projection
(z-scores, LEFT JOINs on the 26 vocabulary tables, OOV id = vocabulary size) written with
``COPY ... TO ... (FORMAT parquet, COMPRESSION zstd)``, with ``preserve_insertion_order=false``
(parallel writing; Sluice keeps the input order).
"""

from __future__ import annotations

import os
import shutil
import tempfile

from benchmarks.peers.features import CATEGORICAL, DECILES, NUMERIC, STATS_NUMERIC, TOP_K


def _q(name: str) -> str:
    return '"' + name + '"'


class Peer:
    def __init__(self, files: list[str], rows: int, work_dir: str) -> None:
        import duckdb

        self._temp = tempfile.mkdtemp(prefix="bench-duckdb-", dir=work_dir)
        # Row order is not needed here: without it DuckDB writes Parquet in parallel.
        self.con = duckdb.connect(config={"temp_directory": self._temp, "preserve_insertion_order": False})
        self.src = "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"

    def statistics(self) -> int:
        qs = "[" + ", ".join(repr(p) for p in DECILES) + "]"
        exprs = ["count(*)"]
        for c in STATS_NUMERIC:
            x = _q(c)
            exprs += [f"count({x})", f"avg({x})", f"stddev_pop({x})", f"min({x})", f"max({x})",
                      f"count_if({x} = 0)", f"approx_quantile({x}, {qs})"]
        for c in CATEGORICAL:
            x = _q(c)
            exprs += [f"count({x})", f"min(length({x}))", f"avg(length({x}))", f"max(length({x}))"]
        row = self.con.sql(f"SELECT {', '.join(exprs)} FROM {self.src}").fetchone()
        counts = " UNION ALL ".join(
            f"SELECT '{c}' AS f, {_q(c)} AS v, count(*) AS n FROM data WHERE {_q(c)} IS NOT NULL GROUP BY {_q(c)}"
            for c in CATEGORICAL)
        self.con.sql(
            f"WITH data AS (SELECT * FROM {self.src}) "
            f"SELECT * FROM (SELECT f, v, n, row_number() OVER (PARTITION BY f ORDER BY n DESC, v) AS r, "
            f"count(*) OVER (PARTITION BY f) AS d FROM ({counts})) WHERE r <= 10").fetchall()
        return int(row[0])

    def transform(self, out_dir: str) -> int:
        con = self.con
        # fit: one aggregate for the numeric analyzers ...
        logs = {c: f"ln(1 + greatest(coalesce({_q(c)}, 0), 0))" for c in NUMERIC}
        agg = con.sql("SELECT " + ", ".join(f"avg({e}), stddev_pop({e})" for e in logs.values())
                      + f" FROM {self.src}").fetchone()
        # ... and one query for the vocabularies (materialised as small tables to join).
        counts = " UNION ALL ".join(
            f"SELECT '{c}' AS f, {_q(c)} AS v, count(*) AS n FROM data WHERE {_q(c)} IS NOT NULL GROUP BY {_q(c)}"
            for c in CATEGORICAL)
        con.sql(f"CREATE OR REPLACE TEMP TABLE vocab AS WITH data AS (SELECT * FROM {self.src}) "
                f"SELECT f, v, r - 1 AS id FROM (SELECT f, v, row_number() OVER "
                f"(PARTITION BY f ORDER BY n DESC, v) AS r FROM ({counts})) WHERE r <= {TOP_K}")
        sizes = dict(con.sql("SELECT f, count(*) FROM vocab GROUP BY f").fetchall())
        for c in CATEGORICAL:
            con.sql(f"CREATE OR REPLACE TEMP TABLE v_{c} AS SELECT v, id FROM vocab WHERE f = '{c}'")
        # apply: one projection, written by COPY
        cols = []
        for k, c in enumerate(NUMERIC):
            mean, std = agg[2 * k], agg[2 * k + 1] or 1.0
            cols.append(f"CAST(({logs[c]} - {mean!r}) / {std!r} AS FLOAT) AS {c}")
        cols += [f"coalesce(v_{c}.id, {sizes.get(c, 0)}) AS {c}" for c in CATEGORICAL]
        cols.append("CAST(t.label AS FLOAT) AS label")
        joins = " ".join(f"LEFT JOIN v_{c} ON t.{_q(c)} = v_{c}.v" for c in CATEGORICAL)
        sel = ", ".join(cols)
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "part-00000.parquet")
        written = con.execute(f"COPY (SELECT {sel} FROM {self.src} AS t {joins}) TO '{path}' "
                              f"(FORMAT parquet, COMPRESSION zstd)").fetchone()
        return int(written[0])

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._temp, ignore_errors=True)
