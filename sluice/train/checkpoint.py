"""Training checkpoints: written atomically, found again by the job's fingerprint.

A checkpoint is one file, ``checkpoint.pt`` in the checkpoint directory, holding the model and
optimizer state, the loader position (``epoch`` and ``step`` within it), every rank's torch RNG
state and the loop's bookkeeping (history, best epoch, early-stopping counter). It is written to
a temporary file in the same directory, flushed and fsync'ed, then renamed over the old one: a
crash mid-write leaves the previous checkpoint (or none), never a truncated file that looks whole.

The fingerprint names the job (data files, features, task, model class, config, worker count):
a checkpoint written for a different job is ignored rather than resumed. :class:`TrainState` is
the training loop's position and bookkeeping; :class:`CheckpointSaver` decides when one is due
(every N steps / T seconds, rank 0 deciding for all) and writes it with every rank's RNG state.

Example::

    save_checkpoint("ckpt", {"fingerprint": fp, "epoch": 1, "step": 40, "model": model.state_dict()})
    state = load_checkpoint("ckpt", fp)     # None when there is none for this fingerprint
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from sluice.train.loop import TrainConfig

__all__ = ["CHECKPOINT_FILE", "CheckpointSaver", "TrainState", "checkpoint_path", "job_fingerprint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FILE = "checkpoint.pt"
log = logging.getLogger("sluice.train")


def checkpoint_path(directory: str) -> str:
    """Where the checkpoint of ``directory`` lives."""
    return os.path.join(directory, CHECKPOINT_FILE)


def job_fingerprint(parts: dict[str, Any]) -> str:
    """sha256 of a JSON rendering of ``parts`` (anything not JSON-native is rendered with repr)."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def save_checkpoint(directory: str, state: dict[str, Any]) -> str:
    """Write ``state`` as the checkpoint of ``directory`` atomically; returns its path."""
    import torch

    os.makedirs(directory, exist_ok=True)
    final = checkpoint_path(directory)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)  # atomic on one filesystem
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return final


def load_checkpoint(directory: str | None, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint in ``directory`` if it was written for ``fingerprint``, else ``None``.

    Leftover temporary files of an interrupted write are deleted; they are never read.
    """
    import torch

    if not directory or not os.path.isdir(directory):
        return None
    for name in os.listdir(directory):
        if name.startswith(".checkpoint-") and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass
    path = checkpoint_path(directory)
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        log.warning("ignoring checkpoint %s: written for another job (different data, model or config)", path)
        return None
    return state


@dataclass
class TrainState:
    """The loop's position and bookkeeping: what a checkpoint holds besides tensors' state."""

    epoch: int = 0
    step: int = 0  # batches of ``epoch`` already trained
    global_step: int = 0  # optimizer steps so far
    rows: int = 0  # rows of ``epoch`` trained so far on this rank
    loss_sum: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    stopped: bool = False


class CheckpointSaver:
    """Decides when a checkpoint is due (every N optimizer steps / T seconds) and writes it
    from rank 0, with every rank's RNG state. All ranks call :meth:`due` and :meth:`save`."""

    def __init__(self, config: TrainConfig, fingerprint: str, rank: int, world: int, model: Any,
                 optimizer: Any, schedulers: list) -> None:
        self.config, self.fingerprint, self.rank, self.world = config, fingerprint, rank, world
        self.model, self.optimizer, self.schedulers = model, optimizer, schedulers
        self.last = time.monotonic()

    def due(self, global_step: int) -> bool:
        c = self.config
        if not c.checkpoint_dir:
            return False
        if c.checkpoint_every_steps and global_step % c.checkpoint_every_steps == 0:
            return True
        if not c.checkpoint_every_seconds:
            return False
        import torch

        flag = torch.tensor([float(time.monotonic() - self.last >= c.checkpoint_every_seconds)])
        if self.world > 1:  # clocks differ between ranks: rank 0 decides for all
            import torch.distributed as dist

            dist.broadcast(flag, 0)
        return bool(flag[0])

    def save(self, state: TrainState) -> None:
        import torch

        rng = [torch.get_rng_state()]
        # Every rank's RNG state is gathered to rank 0; the partial epoch's rows and loss are rank
        # 0's (ranks train equal batch counts, so they differ only in the reported train_loss).
        if self.world > 1:
            import torch.distributed as dist

            rng = [None] * self.world
            dist.all_gather_object(rng, torch.get_rng_state())
        if self.rank == 0:
            save_checkpoint(self.config.checkpoint_dir, {
                "fingerprint": self.fingerprint, "world_size": self.world,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedulers": [s.state_dict() for s in self.schedulers], "rng": rng, "state": state,
            })
        self.last = time.monotonic()
