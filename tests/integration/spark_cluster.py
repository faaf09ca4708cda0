"""Spark fixtures for the integration tests: one shared ``local[2]`` session, and a real standalone cluster.

Import the fixtures into a test module::

    from tests.integration.spark_cluster import spark_engine, spark_session, standalone_master  # noqa: F401

A process holds one SparkContext, so every test in the process shares the
``local[2]`` session (starting one takes 5-10 s); tests against the standalone
cluster run ``sluice`` in a subprocess. The cluster (a master and two workers on
127.0.0.1, 1 core and 1 GiB each) is started with the scripts pip's PySpark
ships (``sbin/spark-daemon.sh``) and stopped by pid (tests/integration/spark_standalone.py,
shared with the benchmarks).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark tests need Java 17", allow_module_level=True)

from tests.integration.spark_standalone import standalone_cluster  # noqa: E402

SPARK_HOME = os.path.dirname(pyspark.__file__)
WORKERS = 2
REGISTER_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def spark_session():
    """The process's SparkSession on ``local[2]``, shared by every Spark test."""
    from sluice.engine.spark_session import SparkSettings, get_session

    return get_session(SparkSettings(master="local[2]", app_name="sluice-tests"))


@pytest.fixture
def spark_engine(spark_session):
    """A SparkEngine over the shared session."""
    from sluice.engine.spark import SparkEngine

    return SparkEngine(session=spark_session)


@pytest.fixture(scope="session")
def standalone_master(tmp_path_factory) -> Iterator[str]:
    """``spark://127.0.0.1:PORT`` of a standalone master with two registered workers; stopped by pid after."""
    with standalone_cluster(str(tmp_path_factory.mktemp("spark-standalone")), workers=WORKERS, cores=1,
                            memory="1g", register_timeout_s=REGISTER_TIMEOUT_S) as url:
        yield url
