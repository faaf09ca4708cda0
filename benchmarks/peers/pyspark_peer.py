"""Hand-written PySpark on ``local[2]``, as a Spark user would write it.

Statistics of every column: ONE ``df.agg(...)`` pass (row count; per numeric column count,
mean, population std, min, max, zeros and ``percentile_approx`` deciles; per string column count and
min/avg/max length) plus ONE value-counts job (a union of per-column ``groupBy().count()``,
ranked by a window: top 10 and the exact distinct count). ``df.summary()`` (Spark's
built-in: count, mean, stddev, min, quartiles, max of every column) is timed separately, as
an extra, at sizes up to ``--spark-summary-max-rows``.

Transform: a Spark ML ``Pipeline`` fitted and applied: ``Imputer`` (mean) on I1..I13,
``SQLTransformer`` for ``log1p(greatest(x, 0))``, ``VectorAssembler`` + ``StandardScaler``
(withMean, withStd) and ``StringIndexer`` (frequencyDesc, handleInvalid=keep) on C1..C26,
written to Parquet. Not exactly Sluice's features: Spark's Imputer has no constant fill,
so missing values get the mean instead of 0; StringIndexer keeps every value (no top-k);
the scaler uses the sample std. The work (three fitting passes + one apply pass) is the
idiomatic Spark ML equivalent.

Session: ``local[2]``, driver memory 6g, ``spark.sql.shuffle.partitions=8`` (the default 200
only adds task overhead on two cores); started before the clock.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.peers.features import CATEGORICAL, DECILES, NUMERIC, STATS_NUMERIC


class Peer:
    def __init__(self, files: list[str], rows: int, work_dir: str, summary: bool = False) -> None:
        from pyspark.sql import SparkSession

        self.spark = (SparkSession.builder.master("local[2]").appName("sluice-bench-pyspark")
                      .config("spark.driver.memory", "6g")
                      .config("spark.sql.shuffle.partitions", "8")
                      .config("spark.ui.enabled", "false")
                      .config("spark.ui.showConsoleProgress", "false")
                      .config("spark.local.dir", work_dir)
                      .getOrCreate())
        self.spark.sparkContext.setLogLevel("ERROR")
        self.files = files
        self.summary = summary
        self.summary_times: list[float] = []
        self.summary_rows: int | None = None

    def statistics(self) -> int:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        df = self.spark.read.parquet(*self.files)
        aggs = [F.count(F.lit(1)).alias("rows")]
        for c in STATS_NUMERIC:
            x = F.col(c)
            aggs += [F.count(x), F.avg(x), F.stddev_pop(x), F.min(x), F.max(x),
                     F.sum(F.when(x == 0, 1).otherwise(0)), F.percentile_approx(x, DECILES, 10000)]
        for c in CATEGORICAL:
            n = F.length(F.col(c))
            aggs += [F.count(F.col(c)), F.min(n), F.avg(n), F.max(n)]
        row = df.agg(*aggs).collect()[0]
        counts = None
        for c in CATEGORICAL:
            part = (df.where(F.col(c).isNotNull()).groupBy(F.col(c).alias("v")).count()
                    .withColumn("f", F.lit(c)))
            counts = part if counts is None else counts.unionByName(part)
        w = Window.partitionBy("f").orderBy(F.desc("count"), F.asc("v"))
        (counts.withColumn("r", F.row_number().over(w))
         .withColumn("d", F.count(F.lit(1)).over(Window.partitionBy("f")))
         .where("r <= 10").collect())
        return int(row["rows"])

    def after_statistics(self) -> None:
        """``df.summary()``, Spark's built-in statistics, timed apart from ``statistics``."""
        if not self.summary:
            return
        df = self.spark.read.parquet(*self.files)
        t0 = time.perf_counter()
        s = df.summary().collect()
        self.summary_times.append(time.perf_counter() - t0)
        self.summary_rows = int(s[0]["user_id"])  # the 'count' row of a column without nulls

    def transform(self, out_dir: str) -> int:
        from pyspark.ml import Pipeline
        from pyspark.ml.feature import Imputer, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler

        df = self.spark.read.parquet(*self.files)
        filled = [f"{c}_filled" for c in NUMERIC]
        logs = ", ".join(f"log1p(greatest({c}_filled, 0D)) AS {c}_log" for c in NUMERIC)
        stages = [
            Imputer(inputCols=NUMERIC, outputCols=filled, strategy="mean"),
            SQLTransformer(statement=f"SELECT *, {logs} FROM __THIS__"),
            VectorAssembler(inputCols=[f"{c}_log" for c in NUMERIC], outputCol="numeric"),
            StandardScaler(inputCol="numeric", outputCol="numeric_z", withMean=True, withStd=True),
            StringIndexer(inputCols=CATEGORICAL, outputCols=[f"{c}_id" for c in CATEGORICAL],
                          handleInvalid="keep", stringOrderType="frequencyDesc"),
        ]
        model = Pipeline(stages=stages).fit(df)
        out = model.transform(df).select("numeric_z", *[f"{c}_id" for c in CATEGORICAL], "label")
        out.write.mode("overwrite").parquet(out_dir)
        return -1  # counted after the clock (see rows_written)

    def rows_written(self, out_dir: str) -> int:
        return self.spark.read.parquet(out_dir).count()

    def extras(self) -> dict[str, Any]:
        return {"summary": self.summary_times, "summary_rows": self.summary_rows} if self.summary_times else {}

    def close(self) -> None:
        self.spark.stop()
