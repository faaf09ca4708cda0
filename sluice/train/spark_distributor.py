"""Data-parallel training on Spark executors through PySpark's ``TorchDistributor``.

:func:`fit_on_spark` is :func:`sluice.train.loop.fit` for the Spark engine: on a cluster the
``config.workers`` training processes run as one barrier Spark job
(``TorchDistributor(local_mode=False)``), each started by ``torchrun`` inside a Spark task; on a
``local[...]`` master, whose executors are the driver's own threads, ``torchrun`` starts them
straight from the driver (``local_mode=True``: no barrier job, no Python workers in between, ~10 s
less start-up). Each runs :func:`sluice.train.distributed.train_rank`, the very code of a local worker
(gloo on CPU, NCCL on CUDA; gradients averaged as there). The group rendezvous at the
``MASTER_ADDR``/``MASTER_PORT`` the distributor sets; ranks are the Spark partition ids (torchrun's
static rendezvous). The model and the job travel as one pickle file in ``config.checkpoint_dir``,
and rank 0 leaves its :class:`TrainResult` and the final weights (``torch.save`` bytes, loaded
into ``model`` here) in a file beside it: through Spark, the CTR model's 18 MB would be pickled
into the task closure, pickled again for torchrun, and come back as 4,300 4-KB Arrow chunks.
Meanwhile rank 0 sends each epoch's metrics over TCP to the caller, who calls ``on_epoch`` live.

Failures: a rank whose own code raises writes a report (rank, pid, host, traceback) into a
folder under ``config.checkpoint_dir``; the run then fails with :class:`WorkerError` naming it,
without a retry. Anything else that aborts the Spark job (a training process killed by a
signal or the OOM killer, a lost executor; the surviving ranks' "connection closed by peer"
errors count as this) restarts the whole group from the last checkpoint, at most
``config.max_restarts`` times. The checkpoint folder must therefore be one the driver and every
executor see (any local path on one machine; a shared mount on a cluster, e.g. the artifact root).

Example::

    from sluice.engine.spark_session import SparkSettings, get_session
    spark = get_session(SparkSettings(master="local[2]"))
    result = fit_on_spark(spark, model, train_files, eval_files, specs, "label", "binary",
                          TrainConfig(epochs=2, workers=2, checkpoint_dir="ckpt"))
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sluice.errors import SluiceError
from sluice.train.distributed import WorkerError

if TYPE_CHECKING:
    from torch import nn

    from sluice.features import FeatureSpec
    from sluice.train.loop import Emit, OnEpoch, TrainConfig, TrainResult

__all__ = ["fit_on_spark"]

log = logging.getLogger("sluice.train")
_REPORTS = ".spark-reports-"  # prefix of the per-attempt report folder in the checkpoint directory
_RESULT = "rank0.result"  # rank 0's result in that folder
_MODEL = ".spark-model-"  # prefix of the pickled (model, job) the ranks load, in the checkpoint directory


def fit_on_spark(spark: Any, model: nn.Module, train_files: Sequence[str], eval_files: Sequence[str] | None,
                 features: Sequence[FeatureSpec], label: str, task: str, config: TrainConfig, *,
                 on_epoch: OnEpoch | None = None) -> TrainResult:
    """Train ``model`` in place with ``config.workers`` processes running as Spark tasks.

    The arguments and the result are :func:`sluice.train.loop.fit`'s, after the SparkSession
    ``spark``: the process's one session, which TorchDistributor finds as the active one.
    ``train_files``, ``eval_files`` and ``config.checkpoint_dir`` must be paths every executor
    can read (and, for checkpoints, write). The job needs ``config.workers`` free task slots at
    once (barrier scheduling): on ``local[N]``, at most N. ``on_epoch(epoch, metrics)`` is called
    in this thread, live, once per epoch: rank 0 sends each epoch's metrics over TCP to this
    process (``spark.driver.host``, which executors reach anyway); epochs that could not be sent
    are called after the job from the history in the result. ``result.restarts`` counts the
    times the group was restarted from the last checkpoint after a task died.

    Example::

        result = fit_on_spark(spark, model, ["train/part-00000.parquet"], ["eval/part-00000.parquet"],
                              specs, "label", "binary", TrainConfig(epochs=2, workers=2),
                              on_epoch=lambda e, m: print(e, m["eval_auc"]))
    """
    import torch

    from sluice.train.loop import checkpoint_scratch, epoch_relay, make_job

    job = make_job(model, train_files, eval_files, features, label, task, config)
    local_mode = spark.sparkContext.master.startswith("local")
    emit = epoch_relay(on_epoch)
    host = spark.conf.get("spark.driver.host")
    sc, group = spark.sparkContext, f"sluice-train-{uuid.uuid4().hex}"
    restarts = 0
    with checkpoint_scratch(job), _pickled((model, job), job.config.checkpoint_dir) as model_file:
        while True:
            distributor = _distributor(config, local_mode)
            reports = tempfile.mkdtemp(prefix=_REPORTS, dir=job.config.checkpoint_dir)

            def attempt(address: tuple[str, int]) -> tuple[Any, Exception | None]:
                sc.setJobGroup(group, "sluice training", interruptOnCancel=True)  # this thread's jobs
                try:
                    distributor.run(_spark_rank, model_file, reports, address)
                    return _read_result(reports), None
                except Exception as exc:  # noqa: BLE001 - py4j and pyspark raise several types
                    return None, exc

            try:
                output, exc = _relaying(attempt, host, emit, cancel=lambda: sc.cancelJobGroup(group))
                if exc is None:
                    break
                failure = _failure(exc, reports, local_mode)
                if failure is not None:
                    raise failure from None
                if restarts >= config.max_restarts:
                    raise WorkerError(f"training on Spark failed; gave up after {restarts} restart(s) "
                                      f"(max_restarts={config.max_restarts}): {_reason(exc)}") from None
                restarts += 1
                log.warning("training on Spark failed (%s); restarting all %d workers from the last checkpoint "
                            "(restart %d of at most %d)", _reason(exc), config.workers, restarts, config.max_restarts)
            finally:
                shutil.rmtree(reports, ignore_errors=True)
    if output is None:
        raise WorkerError("training on Spark finished but rank 0's result did not come back")
    result, weights = output
    model.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
    model.eval()
    result.restarts = restarts
    for epoch, metrics in enumerate(result.history):  # any epoch the live relay missed
        emit("epoch", (epoch, metrics))
    return result


def _relaying(run: Callable[[tuple[str, int]], Any], host: str, emit: Emit, cancel: Callable[[], None]) -> Any:
    """``run(address)`` in a thread, while this thread relays the epochs rank 0 sends to
    ``address`` (one JSON line each) to ``emit``; returns what ``run`` returned. If ``emit``
    raises (or this thread is interrupted), ``cancel()`` stops the job before the error goes on."""
    with socket.create_server((host, 0)) as server, ThreadPoolExecutor(1) as pool:
        server.settimeout(0.2)
        job = pool.submit(run, (host, server.getsockname()[1]))
        try:
            return _relay(server, job, emit)
        except BaseException:
            cancel()
            raise


def _relay(server: socket.socket, job: Future, emit: Emit) -> Any:
    """Accept rank 0's connections and hand each JSON line to ``emit`` until ``job`` is done."""
    conn, pending = None, b""
    try:
        while not job.done() or conn is not None:
            try:
                if conn is None:
                    conn, _ = server.accept()  # one connection per attempt: a restart connects again
                    conn.settimeout(0.2)
                    continue
                chunk = conn.recv(65536)
            except TimeoutError:
                if job.done():  # the job is over: whatever was sent has arrived
                    conn = _close(conn)
                continue
            if not chunk:
                conn, pending = _close(conn), b""
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                epoch, metrics = json.loads(line)
                emit("epoch", (epoch, metrics))
    finally:
        _close(conn)
    return job.result()


def _close(conn: socket.socket | None) -> None:
    if conn is not None:
        conn.close()


def _epoch_sender(address: tuple[str, int]) -> Emit:
    """Rank 0's ``emit``: each epoch's metrics to the driver. Best effort: the result carries
    the whole history too, so a failed send costs only liveness."""
    sock: socket.socket | None = None

    def emit(kind: str, payload: Any) -> None:
        nonlocal sock
        if kind != "epoch":
            return
        try:
            if sock is None:
                sock = socket.create_connection(address, timeout=10)
            sock.sendall((json.dumps([payload[0], payload[1]]) + "\n").encode())
        except OSError:
            pass

    return emit


def _distributor(config: TrainConfig, local_mode: bool) -> Any:
    from pyspark.ml.torch.distributor import TorchDistributor

    try:
        return TorchDistributor(num_processes=config.workers, local_mode=local_mode,
                                use_gpu=config.device.startswith("cuda"))
    except (RuntimeError, ValueError) as exc:  # e.g. use_gpu without spark.task.resource.gpu.amount
        raise SluiceError(f"cannot train on Spark with {config.workers} workers on {config.device}: {exc}") from None


@contextlib.contextmanager
def _pickled(obj: Any, folder: str) -> Iterator[str]:
    """A file in ``folder`` holding ``obj`` (cloudpickle), removed when the block ends."""
    from pyspark import cloudpickle

    os.makedirs(folder, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=_MODEL, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            cloudpickle.dump(obj, f)
        yield path
    finally:
        os.remove(path)


def _spark_rank(model_file: str, reports: str, driver: tuple[str, int]) -> None:
    """What each training process runs (under torchrun, which set RANK, WORLD_SIZE, MASTER_ADDR
    and MASTER_PORT). Rank 0 sends its epochs to ``driver`` as they end, and writes its result
    and the final weights' bytes to ``reports`` (see the module's doc)."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out: dict[str, Any] = {}
    try:
        import torch
        from pyspark import cloudpickle

        from sluice.train.distributed import train_rank

        with open(model_file, "rb") as f:
            model, job = cloudpickle.load(f)
        train_rank(model, job, rank, world, "env://", _epoch_sender(driver) if rank == 0 else lambda *_: None,
                   lambda result, state: out.update(result=result, state=state))
    except Exception as exc:
        _report(reports, rank, exc)
        raise
    if rank == 0:
        weights = io.BytesIO()
        torch.save(out["state"], weights)
        path = os.path.join(reports, _RESULT)
        with open(path + ".tmp", "wb") as f:
            cloudpickle.dump((out["result"], weights.getvalue()), f)
        os.replace(path + ".tmp", path)  # the driver never reads half a result


def _read_result(reports: str) -> tuple[TrainResult, bytes] | None:
    """Rank 0's (result, weights), or None when it left none."""
    path = os.path.join(reports, _RESULT)
    if not os.path.exists(path):
        return None
    from pyspark import cloudpickle

    with open(path, "rb") as f:
        return cloudpickle.load(f)


def _report(folder: str, rank: int, exc: BaseException) -> None:
    """Write this rank's failure for the driver (atomically: the driver never reads half a report)."""
    report = {"rank": rank, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
              "peer": _peer_failure(exc), "error": f"{type(exc).__name__}: {exc}".strip(),
              "traceback": traceback.format_exc()}
    path = os.path.join(folder, f"rank-{rank}.json")
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(report, f)
        os.replace(path + ".tmp", path)
    except OSError:  # the folder is not shared with this executor: the driver treats it as a crash
        pass


def _peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is what a rank gets when a peer died (its connection closed, a collective
    timed out) rather than an error of its own: torch's distributed errors, and gloo's, which
    are plain RuntimeErrors naming gloo."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and "gloo" in str(exc).lower()


def _failure(exc: Exception, reports: str, local_mode: bool) -> Exception | None:
    """The error to raise for a failed attempt, or None when it is a crash worth a restart.

    A rank's own error (reported, and not a consequence of a dead peer) fails the run; so does
    a failure that is neither a Spark task failure nor, in local mode, torchrun exiting non-zero
    (e.g. the job could not be submitted)."""
    found = []
    for name in os.listdir(reports) if os.path.isdir(reports) else []:
        if name.endswith(".json"):
            try:
                with open(os.path.join(reports, name), encoding="utf-8") as f:
                    found.append(json.load(f))
            except (OSError, ValueError):
                continue
    own = sorted((r for r in found if not r["peer"]), key=lambda r: r["time"])
    if own:
        r = own[0]
        return WorkerError(f"training worker rank {r['rank']} (pid {r['pid']} on {r['host']}, a Spark task) "
                           f"failed: {r['error']}\n{r['traceback']}")
    # Local mode: pyspark's wrapper hides torchrun's exit code; its sign of a crash is that no
    # process wrote its output ("failed during training"), or a non-zero exit if that reaches it.
    crashed = "stage failure" in str(exc) or (
        local_mode and any(m in str(exc) for m in ("failed during training", "failed with return code")))
    return None if crashed else WorkerError(f"training on Spark failed: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    """A Spark error in one line: why the stage failed and the task's last Python error, without
    the JVM stack traces (the training processes' own output went to the driver's stderr)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith("at ")]
    stage = next((line.split("SparkException: ", 1)[-1] for line in lines if "stage failure" in line), None)
    last = next((line for line in reversed(lines) if re.match(r"[\w.]+(Error|Exception): ", line)), None)
    return " ".join(dict.fromkeys(x for x in (stage, last) if x))[:1500] or (lines[0] if lines else type(exc).__name__)
