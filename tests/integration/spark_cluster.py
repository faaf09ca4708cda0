"""Spark fixtures for the integration tests: one shared ``local[2]`` session, and a real standalone cluster.

Import the fixtures into a test module::

    from tests.integration.spark_cluster import spark_engine, spark_session, standalone_master  # noqa: F401

A process holds one SparkContext, so every test in the process shares the
``local[2]`` session (starting one takes 5-10 s); tests against the standalone
cluster run ``sluice`` in a subprocess. The cluster (a master and two workers on
127.0.0.1, 1 core and 1 GiB each) is started with the scripts pip's PySpark
ships (``sbin/spark-daemon.sh``) and stopped by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark tests need Java 17", allow_module_level=True)

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon_env(log_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SPARK_HOME": SPARK_HOME, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": log_dir,
                "SPARK_PID_DIR": log_dir, "PYSPARK_PYTHON": sys.executable,
                "SPARK_WORKER_DIR": os.path.join(log_dir, "work")})
    return env


def _start(cls: str, instance: int, args: list[str], env: dict[str, str]) -> None:
    subprocess.run(["bash", os.path.join(SPARK_HOME, "sbin", "spark-daemon.sh"), "start", cls, str(instance), *args],
                   env=env, check=True, capture_output=True, timeout=60)


def _pids(log_dir: str) -> list[int]:
    pids = []
    for name in os.listdir(log_dir):
        if name.endswith(".pid"):
            with open(os.path.join(log_dir, name)) as f, contextlib.suppress(ValueError):
                pids.append(int(f.read().strip()))
    return pids


def _alive_workers(web_port: int) -> int:
    import json

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/json/", timeout=5) as r:
            state = json.load(r)
    except OSError:
        return 0
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


@pytest.fixture(scope="session")
def standalone_master(tmp_path_factory) -> Iterator[str]:
    """``spark://127.0.0.1:PORT`` of a standalone master with two registered workers; stopped by pid after."""
    log_dir = str(tmp_path_factory.mktemp("spark-standalone"))
    env = _daemon_env(log_dir)
    port, web = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    try:
        _start("org.apache.spark.deploy.master.Master", 1,
               ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web)], env)
        for i in range(1, WORKERS + 1):
            _start("org.apache.spark.deploy.worker.Worker", i,
                   [url, "--host", "127.0.0.1", "--cores", "1", "--memory", "1g", "--webui-port", str(free_port())],
                   env)
        deadline = time.time() + REGISTER_TIMEOUT_S
        while _alive_workers(web) < WORKERS:
            if time.time() > deadline:
                logs = "\n".join(open(os.path.join(log_dir, f)).read()[-2000:] for f in os.listdir(log_dir)
                                 if f.endswith(".out"))
                raise RuntimeError(f"{WORKERS} Spark workers did not register with {url} in "
                                   f"{REGISTER_TIMEOUT_S}s; logs:\n{logs}")
            time.sleep(0.5)
        yield url
    finally:
        for pid in _pids(log_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 20
        for pid in _pids(log_dir):
            while time.time() < deadline and _running(pid):
                time.sleep(0.2)
            if _running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
