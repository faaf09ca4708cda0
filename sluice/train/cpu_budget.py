"""How a training process shares the machine's cores between torch and the data loader.

Two decisions, both from the cores this process may run on: how many torch threads to use when
the config names none, and whether the loader gets a background thread that prepares batches
ahead (it pays only while it has a core of its own).

Example::

    torch.set_num_threads(config.threads or default_threads(config.num_workers))
    loader = ParquetBatchLoader(..., prefetch=loader_prefetch(config, threads, world))
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice.train.loop import TrainConfig

__all__ = ["default_threads", "loader_prefetch"]


def default_threads(num_workers: int = 1) -> int:
    """Torch threads when the config names none: the cores the loader leaves free, at least 1."""
    return max(1, _cores() - max(1, num_workers))


def loader_prefetch(config: TrainConfig, threads: int, world: int) -> int:
    """Batches the training loader prepares in a background thread: ``config.prefetch``, or by
    default 4 while this machine has a core beyond its training processes' torch threads (the
    local ones: torchrun's ``LOCAL_WORLD_SIZE``, else ``world``), 0 when they take every core: then
    the loop reads inline, since a loader thread would only contend with the training threads for
    cores and the GIL (2 workers on 2 cores: 91k -> 99k samples/s inline)."""
    if config.prefetch is not None:
        return config.prefetch
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return 4 if _cores() > local * threads else 0


def _cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
