"""Shared by the serving tests: a trained CTR servable (built once per session) and a real server process."""

from __future__ import annotations

import contextlib
import glob
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 40.0
_BUILT: dict[str, tuple[Path, Path, list[dict], Path]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def json_row(row: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def build_ctr(root: Path) -> tuple[Path, Path, list[dict], Path]:
    """Train and push one small CTR model (cached per session): (serving dir, v1 dir, 50 raw rows, sluice home)."""
    if "ctr" in _BUILT:
        return _BUILT["ctr"]
    from sluice.artifacts import ArtifactStore
    from sluice.metadata import MetadataStore
    from sluice.registry.servable import Servable
    from sluice.runner import LocalRunner
    from sluice.runner.pipeline_file import load_pipeline

    serving = root / "serving"
    pipeline, params, _ = load_pipeline(str(REPO / "examples" / "ctr" / "pipeline.py"),
                                        {"rows": "20000", "epochs": "2", "serving_dir": str(serving)})
    home = root / ".sluice"
    runner = LocalRunner(MetadataStore.open(str(home / "metadata.db")), ArtifactStore(str(home / "artifacts")),
                         progress=False, log_dir=str(home / "logs"))
    result = runner.run(pipeline, params)
    assert result.status == "succeeded", {n: s.error for n, s in result.steps.items() if s.error}
    version_dir = serving / "ctr" / "1"
    inputs = Servable.load(str(version_dir)).signature.inputs
    eval_files = sorted(glob.glob(os.path.join(result.output("ExampleGen", "examples").path, "eval", "*.parquet")))
    table = pq.read_table(eval_files).select(sorted(inputs)).slice(0, 50)
    _BUILT["ctr"] = (serving, version_dir, [json_row(r) for r in table.to_pylist()], home)
    return _BUILT["ctr"]


def copy_version(serving: Path, name: str, version: int, source: Path) -> Path:
    """Publish a copy of a version folder as ``serving/name/version`` (atomically, as the Pusher does)."""
    from sluice.registry.push import write_version
    from sluice.registry.servable import Signature
    import json

    signature = Signature.from_dict(json.loads((source / "signature.json").read_text()))
    signature.model_name = name
    return Path(write_version(str(serving), name, version, str(source / "model"), str(source / "transform"),
                              signature))


class ServerProcess:
    """`sluice serve ARGS` in a subprocess on a free 127.0.0.1 port, output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 token: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")
        full_env = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(log_path.parent), env=full_env)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_healthy(self, timeout: float = STARTUP_S) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise AssertionError(f"server not healthy within {timeout} s:\n{self.log()}")
            time.sleep(0.1)

    def wait_for(self, condition, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"{what} within {timeout} s:\n{self.log()[-3000:]}"
            time.sleep(0.1)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def running(args: list[str], log_path: Path, **kw):
    server = ServerProcess(args, log_path, **kw)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def fresh_serving(built_serving: Path, dest: Path) -> Path:
    shutil.copytree(built_serving, dest)
    return dest
