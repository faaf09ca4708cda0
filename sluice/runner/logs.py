"""Per-step log files.

Each step gets ``<log dir>/<run id>/<step>.log``. Its logger writes there,
and so does anything the step prints: ``sys.stdout``/``sys.stderr`` are
routed per thread while steps run, so concurrent steps never mix their
output and the live progress display stays clean.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

_local = threading.local()
_install_lock = threading.Lock()


class _ThreadRoutedStream:
    """A stand-in for sys.stdout/sys.stderr that writes to the current step's log, if any."""

    def __init__(self, fallback: IO[str]) -> None:
        self.fallback = fallback

    def _target(self) -> IO[str]:
        return getattr(_local, "stream", None) or self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def _install_routing() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = _ThreadRoutedStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadRoutedStream):
            sys.stderr = _ThreadRoutedStream(sys.stderr)


@contextmanager
def step_log(path: str, name: str) -> Iterator[logging.Logger]:
    """Open the log file of one step; inside the block, prints of this thread go there too.

    Example::

        with step_log(".sluice/logs/run1/Trainer.log", "Trainer") as log:
            log.info("epoch 1 loss=0.5")
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _install_routing()
    stream = open(path, "a", buffering=1, encoding="utf-8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger(f"sluice.step.{name}.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    _local.stream = stream
    try:
        yield logger
    finally:
        _local.stream = None
        logger.removeHandler(handler)
        stream.close()


def tail(path: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when missing)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return ""
