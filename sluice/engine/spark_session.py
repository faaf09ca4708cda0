"""Spark settings and the one SparkSession a process shares between engines.

Only one SparkContext can live in a JVM, and starting one takes 5-10 s, so
every :class:`~sluice.engine.spark.SparkEngine` in a process uses the same
session; closing an engine leaves it running, :func:`stop_session` (or the
process exit) stops it.

Settings come from arguments, the CLI (``--master``, ``--executor-memory``,
``--spark-conf KEY=VALUE``) or the ``spark:`` section of a YAML file::

    # engine.yaml
    spark:
      master: spark://10.0.0.5:7077
      executor_memory: 8g
      driver_memory: 4g
      conf:
        spark.executor.cores: "4"
        spark.sql.shuffle.partitions: "64"

Example::

    settings = SparkSettings.from_yaml("engine.yaml").with_overrides(master="local[2]")
    spark = get_session(settings)
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from sluice.errors import SluiceError

INSTALL_HINT = ("install it with: pip install 'sluice-ml[spark]' (PySpark 4), and Java 17 "
                "(e.g. apt-get install openjdk-17-jre-headless; set JAVA_HOME if java is not on PATH)")

# Settings every Sluice session gets unless the user sets them: Arrow for every
# transfer between the JVM and Python, no web UI or console progress bars (they
# garble the run display), UTC so timestamps read as they do in DuckDB.
_DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    # With pruning, Spark's CSV parser checks only the columns a query reads, so a row with a
    # bad value (or too few fields) would be dropped by one query and kept by another.
    "spark.sql.csv.parser.columnPruning.enabled": "false",
}


class SparkUnavailable(SluiceError):
    """PySpark or Java is missing, or the Spark session could not start."""


@dataclass(frozen=True)
class SparkSettings:
    """Where and how the Spark session runs.

    ``master`` is ``local[*]``, ``local[N]``, ``spark://HOST:PORT``, ``yarn``
    or ``k8s://...``; ``conf`` holds any other ``spark.*`` setting.

    Example::

        SparkSettings(master="spark://10.0.0.5:7077", executor_memory="8g",
                      conf={"spark.executor.cores": "4"})
    """

    master: str = "local[*]"
    app_name: str = "sluice"
    executor_memory: str | None = None
    driver_memory: str | None = None
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str) -> SparkSettings:
        """Read the ``spark:`` section of a YAML file (keys as the fields of this class)."""
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
        except OSError as exc:
            raise SluiceError(f"cannot read engine config {path}: {exc.strerror}") from None
        section = doc.get("spark") if isinstance(doc, dict) else None
        if not isinstance(section, dict):
            raise SluiceError(f"engine config {path} has no 'spark:' section; expected e.g.\n"
                              f"spark:\n  master: local[*]\n  conf:\n    spark.executor.cores: '2'")
        known = {"master", "app_name", "executor_memory", "driver_memory", "conf"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise SluiceError(f"engine config {path}: unknown key(s) {unknown} under 'spark:'; "
                              f"known keys: {sorted(known)} (other settings go under 'conf:')")
        conf = section.get("conf") or {}
        if not isinstance(conf, dict):
            raise SluiceError(f"engine config {path}: 'spark.conf' must be a mapping of setting -> value")
        values = {k: section[k] for k in known - {"conf"} if section.get(k) is not None}
        return cls(**{k: str(v) for k, v in values.items()}, conf={str(k): _conf_value(v) for k, v in conf.items()})

    def with_overrides(self, *, master: str | None = None, executor_memory: str | None = None,
                       driver_memory: str | None = None, conf: dict[str, str] | None = None) -> SparkSettings:
        """A copy with the given values replacing these (``conf`` entries are merged)."""
        changes: dict[str, Any] = {k: v for k, v in {"master": master, "executor_memory": executor_memory,
                                                      "driver_memory": driver_memory}.items() if v}
        if conf:
            changes["conf"] = {**self.conf, **conf}
        return replace(self, **changes)

    def spark_conf(self) -> dict[str, str]:
        """Every setting the session is built with: defaults, then this object's values."""
        conf = dict(_DEFAULT_CONF)
        # Executors must run this very Python (the workers need pyarrow and sluice).
        conf["spark.pyspark.python"] = sys.executable
        conf["spark.pyspark.driver.python"] = sys.executable
        cores = _local_cores(self.master)
        if cores:  # small data on few cores: 200 shuffle partitions would be 200 tiny tasks
            conf["spark.sql.shuffle.partitions"] = str(2 * cores)
        if self.executor_memory:
            conf["spark.executor.memory"] = self.executor_memory
        if self.driver_memory:
            conf["spark.driver.memory"] = self.driver_memory
        conf.update(self.conf)
        return conf


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _local_cores(master: str) -> int | None:
    """Cores of a ``local[N]`` / ``local[*]`` / ``local`` master, None for a cluster."""
    if master == "local":
        return 1
    m = re.fullmatch(r"local\[(\d+|\*)(?:,\s*\d+)?\]", master)
    if not m:
        return None
    return (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1))


def check_available() -> None:
    """Raise :class:`SparkUnavailable`, saying how to install, when PySpark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(f"the spark engine needs PySpark, which is not installed; {INSTALL_HINT}") from None
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) and not shutil.which("java"):
        raise SparkUnavailable(f"the spark engine needs Java 17, and no java was found (JAVA_HOME unset, "
                               f"no java on PATH); {INSTALL_HINT}")


_lock = threading.Lock()
_session: Any = None


def get_session(settings: SparkSettings | None = None) -> Any:
    """The process's SparkSession, started with ``settings`` on first use.

    A later call asking for a different master is an error: a process holds
    one SparkContext. Example::

        spark = get_session(SparkSettings(master="local[2]"))
    """
    global _session
    settings = settings or SparkSettings()
    with _lock:
        if _session is not None and _alive(_session):
            current = _session.sparkContext.master
            if settings.master != current:
                raise SluiceError(f"a Spark session with master {current!r} is already running in this process; "
                                  f"one process holds one SparkContext, so master {settings.master!r} needs "
                                  f"another process (or stop_session() first)")
            return _session
        check_available()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers started by the JVM read it too
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
        for key, value in settings.spark_conf().items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - a JVM that fails to start raises several types
            raise SparkUnavailable(f"could not start Spark (master {settings.master!r}): {exc}. "
                                   f"Check Java 17 and the master URL; {INSTALL_HINT}") from exc
        session.sparkContext.setLogLevel("ERROR")
        _session = session
        return session


def _alive(session: Any) -> bool:
    sc = session.sparkContext
    return sc._jsc is not None  # set to None by stop()


def stop_session() -> None:
    """Stop the shared session (the next :func:`get_session` starts a new one)."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


atexit.register(stop_session)
