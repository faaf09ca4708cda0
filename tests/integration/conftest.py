"""Fixtures shared by the integration tests: one local[2] Spark session for every Spark test,
and a standalone Spark cluster on 127.0.0.1 (see spark_cluster.py)."""

from tests.integration.spark_cluster import spark_engine, spark_session, standalone_master  # noqa: F401
