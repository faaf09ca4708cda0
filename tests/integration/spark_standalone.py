"""Start and stop a Spark standalone cluster on 127.0.0.1 (a master and N workers), by pid.

Shared by the integration tests' ``standalone_master`` fixture (tests/integration/spark_cluster.py)
and the benchmarks (benchmarks/training.py); it needs PySpark and Java but not pytest::

    with standalone_cluster("/tmp/spark-logs", workers=2) as url:   # "spark://127.0.0.1:PORT"
        ...

The daemons are started with the scripts pip's PySpark ships (``sbin/spark-daemon.sh``), each
worker with ``cores`` cores and ``memory`` of memory, and stopped by the pids they record (SIGTERM,
then SIGKILL after 20 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

REGISTER_TIMEOUT_S = 90


def spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon_env(log_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SPARK_HOME": spark_home(), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": log_dir,
                "SPARK_PID_DIR": log_dir, "PYSPARK_PYTHON": sys.executable,
                "SPARK_WORKER_DIR": os.path.join(log_dir, "work")})
    return env


def _start(cls: str, instance: int, args: list[str], env: dict[str, str]) -> None:
    subprocess.run(["bash", os.path.join(spark_home(), "sbin", "spark-daemon.sh"), "start", cls, str(instance),
                    *args], env=env, check=True, capture_output=True, timeout=60)


def _pids(log_dir: str) -> list[int]:
    pids = []
    for name in os.listdir(log_dir):
        if name.endswith(".pid"):
            with open(os.path.join(log_dir, name)) as f, contextlib.suppress(ValueError):
                pids.append(int(f.read().strip()))
    return pids


def _alive_workers(web_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/json/", timeout=5) as r:
            state = json.load(r)
    except OSError:
        return 0
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(log_dir: str) -> None:
    """Stop every daemon that recorded its pid in ``log_dir``: SIGTERM, then SIGKILL after 20 s."""
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


@contextlib.contextmanager
def standalone_cluster(log_dir: str, workers: int = 2, cores: int = 1, memory: str = "1g",
                       register_timeout_s: float = REGISTER_TIMEOUT_S) -> Iterator[str]:
    """``spark://127.0.0.1:PORT`` of a standalone master with ``workers`` registered workers; stopped after."""
    os.makedirs(log_dir, exist_ok=True)
    env = _daemon_env(log_dir)
    port, web = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    try:
        _start("org.apache.spark.deploy.master.Master", 1,
               ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web)], env)
        for i in range(1, workers + 1):
            _start("org.apache.spark.deploy.worker.Worker", i,
                   [url, "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory,
                    "--webui-port", str(free_port())], env)
        deadline = time.time() + register_timeout_s
        while _alive_workers(web) < workers:
            if time.time() > deadline:
                logs = "\n".join(open(os.path.join(log_dir, f)).read()[-2000:] for f in os.listdir(log_dir)
                                 if f.endswith(".out"))
                raise RuntimeError(f"{workers} Spark workers did not register with {url} in "
                                   f"{register_timeout_s}s; logs:\n{logs}")
            time.sleep(0.5)
        yield url
    finally:
        stop(log_dir)
