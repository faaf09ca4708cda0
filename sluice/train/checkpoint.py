"""Training checkpoints: written atomically, found again by the job's fingerprint.

A checkpoint is one file, ``checkpoint.pt`` in the checkpoint directory, holding the model and
optimizer state, the loader position (``epoch`` and ``step`` within it), every rank's torch RNG
state and the loop's bookkeeping (history, best epoch, early-stopping counter). It is written to
a temporary file in the same directory, flushed and fsync'ed, then renamed over the old one: a
crash mid-write leaves the previous checkpoint (or none), never a truncated file that looks whole.

The fingerprint names the job (data files, features, task, model class, config, worker count):
a checkpoint written for a different job is ignored rather than resumed.

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
from typing import Any

__all__ = ["CHECKPOINT_FILE", "checkpoint_path", "job_fingerprint", "load_checkpoint", "save_checkpoint"]

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
