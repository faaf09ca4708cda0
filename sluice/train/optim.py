"""Optimizers and learning-rate schedules for the training loop.

Example::

    optimizer = build_optimizer(model, TrainConfig(optimizer="adam", learning_rate=1e-3))
    schedule = LearningRateSchedule(TrainConfig(lr_schedule="cosine", warmup_steps=100), steps_per_epoch=250)
    schedule(0), schedule(100)   # 0.01 (warming up), 1.0 (peak)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from sluice.train.loop import TrainConfig


class SplitOptimizer:
    """Two optimizers behind one ``step``: a sparse one for embedding tables with sparse
    gradients (only the looked-up rows change, so a step costs the batch, not the vocabulary)
    and the configured one for every other parameter.

    Weight decay applies to the dense parameters only.
    """

    def __init__(self, dense: torch.optim.Optimizer | None, sparse: torch.optim.Optimizer | None) -> None:
        self.optimizers = [o for o in (dense, sparse) if o is not None]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> list[dict]:
        return [o.state_dict() for o in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        for o, state in zip(self.optimizers, states):
            o.load_state_dict(state)


EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)  # the layers whose ``sparse=True`` gives sparse gradients


def sparse_parameters(model: nn.Module) -> set[int]:
    """ids of the embedding weights that get sparse gradients."""
    return {id(m.weight) for m in model.modules() if isinstance(m, EMBEDDINGS) and m.sparse}


def build_optimizer(model: nn.Module, config: TrainConfig) -> SplitOptimizer:
    """The configured optimizer (adam, adamw, sgd), with SparseAdam for sparse embedding tables."""
    params = [p for p in model.parameters() if p.requires_grad]
    sparse_ids = sparse_parameters(model)
    dense = [p for p in params if id(p) not in sparse_ids]
    sparse = [p for p in params if id(p) in sparse_ids]
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":  # SGD handles sparse gradients itself
        return SplitOptimizer(torch.optim.SGD(params, lr=lr, weight_decay=wd), None)
    if config.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {config.optimizer!r}")
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return SplitOptimizer(cls(dense, lr=lr, weight_decay=wd) if dense else None,
                          torch.optim.SparseAdam(sparse, lr=lr) if sparse else None)



class LearningRateSchedule:
    """Learning-rate multiplier per optimizer step: linear warm-up, then constant/cosine/step."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int) -> None:
        self.config = config
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = max(1, self.steps_per_epoch * config.epochs)

    def __call__(self, step: int) -> float:
        c = self.config
        if c.warmup_steps and step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        if c.lr_schedule == "cosine":
            span = max(1, self.total - c.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - c.warmup_steps) / span)))
        if c.lr_schedule == "step":
            return c.lr_gamma ** ((step // self.steps_per_epoch) // max(1, c.lr_step_epochs))
        return 1.0
