"""Launch data-parallel training in local worker processes, and restart them when one dies.

:func:`launch` starts ``config.workers`` processes (``spawn``: fresh interpreters, safe from a
multi-threaded parent). They rendezvous over TCP on 127.0.0.1 at a free port and form a
torch.distributed process group (gloo on CPU, NCCL when training on CUDA); each runs
:func:`sluice.train.loop.run_training` on its own row-group shard with the model wrapped in
DistributedDataParallel, or, for a model with sparse embedding tables on CPU, with
:class:`~sluice.train.grad_sync.GradSync`, which sends the rows a step touched and the dense
gradients in one collective (``TrainConfig.ddp_sparse_embeddings=False`` makes the tables dense).

Workers are started with ``spawn``, which re-imports the caller's main module: a script calling
``fit(..., workers=N)`` needs the usual ``if __name__ == "__main__":`` guard, and a custom
model's class must be importable (defined at module level).

The parent supervises: it relays rank 0's per-epoch metrics to the caller, and watches exit
codes. A worker that raises reports its traceback and the run fails with :class:`WorkerError`
naming the rank. A worker killed by a signal (SIGKILL, the OOM killer, a segfault) is a crash:
the other workers are stopped and the whole group restarts from the last checkpoint, at most
``config.max_restarts`` times. Workers also die with the parent (``PR_SET_PDEATHSIG``).

Example::

    from sluice.train import TrainConfig, build_model, fit
    model = build_model("mlp", specs, "binary", seed=0)
    fit(model, train, eval_, specs, "label", "binary", TrainConfig(epochs=3, workers=2))
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import queue
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sluice.errors import SluiceError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from sluice.train.grad_sync import GradSync
    from sluice.train.loop import Emit, Job, TrainConfig, TrainResult

__all__ = ["WorkerError", "embedding_sync", "free_port", "launch", "train_rank", "wrap_ddp"]

log = logging.getLogger("sluice.train")
_GRACE_S = 3.0  # how long the other workers get to report after one fails


class WorkerError(SluiceError):
    """A training worker failed (its traceback is in the message), or workers kept crashing."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the rendezvous binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class _Outcome:
    result: Any = None  # rank 0's TrainResult
    errors: list[tuple[int, int, str]] = field(default_factory=list)  # (rank, pid, traceback)
    crashed: list[tuple[int, int, int]] = field(default_factory=list)  # (rank, pid, exit code)


def launch(model: nn.Module, job: Job, emit: Emit) -> TrainResult:
    """Train ``model`` with ``job.config.workers`` processes; load rank 0's final weights into it.

    ``emit("epoch", (epoch, metrics))`` is called in this process for rank 0's epochs.
    """
    import torch

    config = job.config
    restarts = 0
    final = os.path.join(config.checkpoint_dir, "final.pt")
    while True:
        outcome = _run_group(model, job, final, emit)
        if outcome.result is not None and os.path.exists(final):
            # Training finished and rank 0 saved the weights: a worker that dies on its way out
            # (gloo threads can abort at interpreter exit) costs nothing, so no restart.
            for rank, pid, code in outcome.crashed:
                log.warning("training worker rank %d (pid %d) exited with %d after training finished",
                            rank, pid, code)
            break
        if outcome.errors and not outcome.crashed:
            rank, pid, tb = outcome.errors[0]
            last = tb.strip().splitlines()[-1] if tb.strip() else "unknown error"
            raise WorkerError(f"training worker rank {rank} (pid {pid}) failed: {last}\n{tb}")
        if outcome.crashed:
            rank, pid, code = outcome.crashed[0]
            if code >= 0:  # exited by itself without reporting (e.g. it could not unpickle its job)
                raise WorkerError(f"training worker rank {rank} (pid {pid}) exited with code {code} before "
                                  "reporting an error (see its stderr above)")
            how = f"was killed by signal {-code}"
            if restarts >= config.max_restarts:
                raise WorkerError(f"training worker rank {rank} (pid {pid}) {how}; gave up after "
                                  f"{restarts} restart(s) (max_restarts={config.max_restarts})")
            restarts += 1
            log.warning("training worker rank %d (pid %d) %s; restarting all %d workers from the last "
                        "checkpoint (restart %d of at most %d)", rank, pid, how, config.workers, restarts,
                        config.max_restarts)
            emit("restart", {"rank": rank, "pid": pid, "exit_code": code, "restarts": restarts})
            continue
        raise WorkerError("training workers stopped without a result or an error")  # not reached in practice
    result: TrainResult = outcome.result
    model.load_state_dict(torch.load(final, map_location="cpu", weights_only=True))
    os.unlink(final)
    model.eval()
    result.restarts = restarts
    return result


def _run_group(model: nn.Module, job: Job, final: str, emit: Emit) -> _Outcome:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    port = free_port()
    world = job.config.workers
    # Plain pickle bytes, not the model: multiprocessing would hand the workers torch's shared-memory
    # tensors, so every rank would update the same weights (each step applied N times, racing).
    blob = pickle.dumps(model)
    procs = [ctx.Process(target=_worker, args=(rank, world, port, blob, job, final, messages, os.getpid()),
                         name=f"sluice-train-{rank}", daemon=True) for rank in range(world)]
    outcome = _Outcome()
    try:
        for p in procs:
            p.start()
        log.info("started %d training workers (pids %s) on 127.0.0.1:%d", world, [p.pid for p in procs], port)
        failed_at: float | None = None
        while True:
            _drain(messages, outcome, emit, procs, timeout=0.2)
            codes = [p.exitcode for p in procs]
            if failed_at is None and any(c not in (None, 0) for c in codes):
                failed_at = time.monotonic()
                # Crashes are those that died before we stopped anyone: record them now.
                reported = {r for r, _, _ in outcome.errors}
                outcome.crashed = [(r, procs[r].pid, c) for r, c in enumerate(codes)
                                   if c not in (None, 0) and r not in reported]
            if all(c is not None for c in codes):
                _drain(messages, outcome, emit, procs, timeout=0)
                if failed_at is None and outcome.result is None:  # all exited 0 without a result
                    outcome.crashed = [(0, procs[0].pid, 0)]
                return outcome
            if failed_at is not None and time.monotonic() - failed_at > _GRACE_S:
                _drain(messages, outcome, emit, procs, timeout=0)
                return outcome  # the rest are stuck in a collective with a dead peer: stopped below
    finally:
        for p in procs:  # stop whatever still runs: terminate, then kill
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        messages.close()
        messages.join_thread()


def _drain(messages: Any, outcome: _Outcome, emit: Emit, procs: list, timeout: float) -> None:
    while True:
        try:
            kind, rank, payload = messages.get(timeout=timeout) if timeout else messages.get_nowait()
        except (queue.Empty, EOFError, OSError):
            return
        timeout = 0
        if kind == "epoch":
            emit("epoch", payload)
        elif kind == "done":
            outcome.result = payload
        elif kind == "error":
            outcome.errors.append((rank, procs[rank].pid, payload))


def _worker(rank: int, world: int, port: int, blob: bytes, job: Job, final: str, messages: Any,
            parent: int) -> None:
    """One local training process: train, and (rank 0) save the final weights for the parent."""
    _die_with_parent(parent)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # rendezvous and traffic stay on 127.0.0.1
    try:
        import torch

        def save(result: TrainResult, state: dict[str, Any]) -> None:
            torch.save(state, final + ".tmp")
            os.replace(final + ".tmp", final)  # atomic: the parent never reads half a file
            messages.put(("done", rank, result))

        train_rank(pickle.loads(blob), job, rank, world, f"tcp://127.0.0.1:{port}",
                   lambda kind, payload: messages.put((kind, rank, payload)), save)
    except BaseException:  # noqa: BLE001 - reported to the parent, which names the rank
        messages.put(("error", rank, traceback.format_exc()))
        messages.close()
        messages.join_thread()
        sys.exit(1)
    messages.close()
    messages.join_thread()


def train_rank(model: nn.Module, job: Job, rank: int, world: int, init_method: str, emit: Emit,
               done: Callable[[TrainResult, dict[str, Any]], None]) -> None:
    """One process of a data-parallel group, the same for local workers and Spark tasks: join
    the group at ``init_method`` (``tcp://host:port``, or ``env://`` for MASTER_ADDR/MASTER_PORT),
    run :func:`~sluice.train.loop.run_training`, and on rank 0 hand the result and the final
    weights (CPU tensors) to ``done`` before the closing barrier, so that a rank dying on its way
    out cannot lose them.

    Example (in each of N processes)::

        train_rank(model, job, rank, N, "tcp://127.0.0.1:29500", emit, lambda r, w: torch.save(w, "final.pt"))
    """
    import torch
    import torch.distributed as dist

    from sluice.train.loop import run_training

    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    backend = "nccl" if job.config.device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                            timeout=timedelta(minutes=30))
    try:
        result = run_training(model, job, rank, world, emit)
        if rank == 0:
            done(result, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        dist.barrier()
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the parent dies (no orphaned workers)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def embedding_sync(model: nn.Module, config: TrainConfig, device: torch.device, world: int) -> GradSync | None:
    """How a training process syncs ``model``'s sparse embedding gradients (call before
    ``model.to(device)``): a :class:`~sluice.train.grad_sync.GradSync` on CPU (alone it
    coalesces faster than SparseAdam; with ``world > 1`` it exchanges the touched rows, and the
    dense gradients too when they are small), or None after switching the tables to dense
    gradients that DDP all-reduces (NCCL, or ``ddp_sparse_embeddings=False``; on 1M CTR rows, 43
    tables and 4.4M values with ~12.6k rows touched per 4,096-row batch, that dense all-reduce
    alone took 13 ms a step over gloo)."""
    import torch.distributed as dist

    from sluice.train.grad_sync import GradSync
    from sluice.train.optim import EMBEDDINGS

    sparse = world == 1 or (dist.get_backend() != "nccl" and config.ddp_sparse_embeddings is not False)
    if device.type == "cpu" and sparse:
        return GradSync(model)
    if world > 1:
        for m in model.modules():
            if isinstance(m, EMBEDDINGS):
                m.sparse = False
    return None


def wrap_ddp(model: nn.Module, device: torch.device, grad_sync: GradSync | None) -> nn.Module:
    """``model`` in DistributedDataParallel, minus the tables ``grad_sync`` syncs itself; or
    ``model`` itself, made the same on every worker, when ``grad_sync`` syncs every gradient."""
    import torch
    import torch.distributed as dist
    from torch import nn

    if grad_sync and grad_sync.replaces_ddp:
        with torch.no_grad():  # what DDP does at construction: every worker starts from rank 0's state
            for t in itertools.chain(model.parameters(), model.buffers()):
                dist.broadcast(t, 0)
        return model
    if grad_sync:
        grad_sync.exclude_from(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
