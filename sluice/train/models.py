"""Built-in models for tabular and click-through data, and the contract for your own.

Every model is an ``nn.Module`` whose ``forward(dense, sparse)`` takes float32 ``dense``
[B, n_numeric] and int64 ``sparse`` [B, n_categorical] (ids in ``[0, cardinality)``, in
feature-spec order) and returns logits: [B] for ``binary`` and ``regression``, [B, C] for
``multiclass``.

Embedding sizes follow the feature specs. The default width of a categorical feature's
embedding is ``min(32, max(2, round(6 * cardinality ** 0.25)))`` (the rule of thumb from
Google's feature-column guidance, capped so that huge vocabularies stay cheap); pass
``embedding_dim=16`` for one width everywhere or ``{"country": 8}`` to override per feature.

Built-ins: ``logistic_regression``, ``mlp``, ``wide_and_deep`` (here) and ``deepfm``,
``dcn_v2`` (:mod:`sluice.train.interactions`).

Bring your own model with a factory ``fn(features, task, num_classes) -> nn.Module`` whose
forward has the signature above; pass it (or ``"package.module:fn"``) to :func:`build_model`.
The contract, checked by the training loop:

- ``forward(dense, sparse)``: ``dense`` float32 [B, n_numeric] (the numeric features in spec
  order), ``sparse`` int64 [B, n_categorical] (the categorical ids in spec order); either may
  have 0 columns;
- it returns float logits [B] for ``binary`` (before the sigmoid) and ``regression`` (the
  prediction), [B, num_classes] for ``multiclass`` (before the softmax); any other shape is
  refused with an error naming the shape;
- ``nn.Embedding(..., sparse=True)`` tables get sparse gradients and ``SparseAdam``; everything
  else the configured optimizer;
- it is saved with ``torch.export``, so its forward must be exportable; with ``workers > 1`` it
  is pickled to the worker processes, so its class must be importable (module level).

Example::

    model = build_model("wide_and_deep", specs, "binary", hidden=(128, 64), seed=0)
    logits = model(dense, sparse)        # [B]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sluice.features import FeatureSpec

__all__ = [
    "MODELS",
    "TASKS",
    "LogisticRegression",
    "MLP",
    "WideAndDeep",
    "build_model",
    "default_embedding_dim",
    "output_dim",
]

TASKS = ("binary", "multiclass", "regression")

ModelFactory = Callable[[list[FeatureSpec], str, "int | None"], nn.Module]


def default_embedding_dim(cardinality: int) -> int:
    """Embedding width for a vocabulary: ``min(32, max(2, round(6 * cardinality ** 0.25)))``."""
    return int(min(32, max(2, round(6 * cardinality**0.25))))


def output_dim(task: str, num_classes: int | None) -> int:
    """Logit width a task needs; validates the task and ``num_classes``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "multiclass":
        if num_classes is None or num_classes < 2:
            raise ValueError(f"multiclass needs num_classes >= 2, got {num_classes!r}")
        return int(num_classes)
    return 1


class _Base(nn.Module):
    """Shared bookkeeping: feature layout, task head width, and the hparams saved in model.json."""

    name = ""

    def __init__(self, features: Sequence[FeatureSpec], task: str, num_classes: int | None) -> None:
        super().__init__()
        self.task = task
        self.num_classes = num_classes
        self.out_dim = output_dim(task, num_classes)
        self.n_numeric = sum(1 for f in features if f.kind == "numeric")
        self.categorical = [(f.name, int(f.cardinality or 0)) for f in features if f.kind == "categorical"]
        self.hparams: dict[str, Any] = {}

    def _logits(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.task == "multiclass" else out.squeeze(-1)


class _Wide(nn.Module):
    """Linear model over categorical ids: one weight (per output) for each id of each feature.

    All features share one table with per-feature offsets, so the lookup is a single gather
    instead of one call per feature.
    """

    def __init__(self, cardinalities: Sequence[int], out_dim: int) -> None:
        super().__init__()
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0) if cardinalities else torch.zeros(0, dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Embedding(max(1, sum(cardinalities)), out_dim, sparse=True)
        nn.init.zeros_(self.weight.weight)  # a linear model starts neutral, like sklearn's

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        if sparse.shape[1] == 0:
            return sparse.new_zeros((sparse.shape[0], self.weight.embedding_dim), dtype=self.weight.weight.dtype)
        return self.weight(sparse + self.offsets).sum(1)


class _Embeddings(nn.Module):
    """One embedding table per categorical feature; output is the concatenation [B, sum(dims)]."""

    def __init__(self, categorical: Sequence[tuple[str, int]], embedding_dim: int | Mapping[str, int] | None) -> None:
        super().__init__()
        dims = []
        for name, card in categorical:
            if isinstance(embedding_dim, int):
                dims.append(embedding_dim)
            elif isinstance(embedding_dim, Mapping) and name in embedding_dim:
                dims.append(int(embedding_dim[name]))
            else:
                dims.append(default_embedding_dim(card))
        # Sparse gradients: a step touches only the rows in the batch, not whole vocabularies.
        self.tables = nn.ModuleList(nn.Embedding(card, d, sparse=True) for (_, card), d in zip(categorical, dims))
        self.width = sum(dims)
        self._fused: list[_FusedGroup] | None = None
        self._order: torch.Tensor | None = None

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        if not len(self.tables):
            return sparse.new_zeros((sparse.shape[0], 0), dtype=torch.float32)
        if self._fused is not None and not torch.is_grad_enabled() and self._fused_intact():
            return self._fused_forward(sparse)
        return torch.cat([t(sparse[:, i]) for i, t in enumerate(self.tables)], dim=1)

    def fuse(self) -> None:
        """Store the tables of each width in one tensor, the tables becoming views into it, so
        inference does one lookup per width instead of one per feature (42 tables, one row:
        300 -> 10 us, most of a serving request's model time). Same values; training, which
        needs each table's own gradient, still goes table by table."""
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(self.tables):
            groups.setdefault(t.embedding_dim, []).append(i)
        fused, columns = [], []
        for dim, members in groups.items():
            tables = [self.tables[i] for i in members]
            weight = torch.cat([t.weight.detach() for t in tables])
            sizes = [t.num_embeddings for t in tables]
            offsets = torch.tensor([0, *sizes[:-1]], dtype=torch.long, device=weight.device).cumsum(0)
            start = 0
            for t, size in zip(tables, sizes):
                t.weight = nn.Parameter(weight[start:start + size], requires_grad=t.weight.requires_grad)
                start += size
            every = members == list(range(len(self.tables)))
            fused.append(_FusedGroup(weight, offsets, tables[0], None if every else torch.tensor(members)))
            columns += [(i, dim) for i in members]
        # Output columns come grouped by width; this permutation puts them back in table order.
        starts, width = {}, 0
        for i, dim in columns:
            starts[i], width = width, width + dim
        self._order = torch.cat([torch.arange(starts[i], starts[i] + t.embedding_dim)
                                 for i, t in enumerate(self.tables)])
        self._fused = fused

    def _fused_intact(self) -> bool:
        """False once ``.to()`` replaced the weights (the views are gone): fall back to tables."""
        return all(g.first.weight.data_ptr() == g.weight.data_ptr() for g in self._fused)  # type: ignore[union-attr]

    def _fused_forward(self, sparse: torch.Tensor) -> torch.Tensor:
        parts = [nn.functional.embedding((sparse if g.columns is None else sparse.index_select(1, g.columns))
                                         + g.offsets, g.weight).flatten(1)
                 for g in self._fused]  # type: ignore[union-attr]
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts, dim=1).index_select(1, self._order)  # type: ignore[arg-type]


@dataclass
class _FusedGroup:
    """Embedding tables of one width stored in one tensor (see :meth:`_Embeddings.fuse`)."""

    weight: torch.Tensor  # the tables' rows, one after another
    offsets: torch.Tensor  # where each table starts in ``weight``
    first: nn.Embedding  # its weight is a view into ``weight`` until ``.to()`` replaces it
    columns: torch.Tensor | None  # the sparse columns this group reads; None: all, in order


def fuse_embeddings(model: nn.Module) -> nn.Module:
    """Fuse every built-in embedding layer of ``model`` for fast inference (see ``_Embeddings.fuse``)."""
    for module in model.modules():
        if isinstance(module, _Embeddings) and len(module.tables):
            module.fuse()
    return model


def _mlp(width_in: int, hidden: Sequence[int], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width_in, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width_in = h
    layers.append(nn.Linear(width_in, out_dim))
    return nn.Sequential(*layers)


class LogisticRegression(_Base):
    """Linear model: weights on numeric features plus one weight per categorical id.

    For ``multiclass`` it is softmax regression; for ``regression``, linear regression.
    No hyperparameters (regularize through ``TrainConfig.weight_decay``).
    """

    name = "logistic_regression"

    def __init__(self, features: Sequence[FeatureSpec], task: str = "binary", num_classes: int | None = None) -> None:
        super().__init__(features, task, num_classes)
        self.bias = nn.Parameter(torch.zeros(self.out_dim))
        self.dense = nn.Linear(self.n_numeric, self.out_dim, bias=False) if self.n_numeric else None
        self.wide = _Wide([c for _, c in self.categorical], self.out_dim)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        out = self.wide(sparse) + self.bias
        if self.dense is not None:
            out = out + self.dense(dense)
        return self._logits(out)


class MLP(_Base):
    """Embeddings of categorical ids, concatenated with numeric features, through ReLU layers.

    Hyperparameters: ``hidden`` (layer widths), ``dropout``, ``embedding_dim``.
    """

    name = "mlp"

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        task: str = "binary",
        num_classes: int | None = None,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        embedding_dim: int | Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(features, task, num_classes)
        self.hparams = {"hidden": list(hidden), "dropout": dropout, "embedding_dim": _jsonable(embedding_dim)}
        self.embeddings = _Embeddings(self.categorical, embedding_dim)
        self.deep = _mlp(self.n_numeric + self.embeddings.width, hidden, self.out_dim, dropout)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        return self._logits(self.deep(torch.cat([dense, self.embeddings(sparse)], dim=1)))


class WideAndDeep(MLP):
    """Wide & Deep (Cheng et al., 2016): a linear model over categorical ids (memorization)
    plus an MLP over embeddings and numeric features (generalization), logits summed.

    Hyperparameters: as :class:`MLP`.
    """

    name = "wide_and_deep"

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        task: str = "binary",
        num_classes: int | None = None,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
        embedding_dim: int | Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(features, task, num_classes, hidden, dropout, embedding_dim)
        self.wide = _Wide([c for _, c in self.categorical], self.out_dim)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        deep = self.deep(torch.cat([dense, self.embeddings(sparse)], dim=1))
        return self._logits(deep + self.wide(sparse))




def build_model(
    name: str | ModelFactory,
    features: Sequence[FeatureSpec],
    task: str,
    num_classes: int | None = None,
    *,
    seed: int | None = None,
    **hparams: Any,
) -> nn.Module:
    """A model for ``features`` and ``task``.

    ``name`` is a key of :data:`MODELS`, a factory ``fn(features, task, num_classes)``, or
    ``"package.module:fn"`` naming one. ``seed`` seeds torch first so weights are reproducible.

    Example::

        build_model("mlp", specs, "multiclass", num_classes=3, hidden=(64,), seed=0)
        build_model(my_factory, specs, "binary")
    """
    output_dim(task, num_classes)
    if seed is not None:
        torch.manual_seed(seed)
    features = list(features)
    if isinstance(name, str) and name in MODELS:
        return MODELS[name](features, task, num_classes, **hparams)
    factory = _resolve(name)
    if hparams:
        raise TypeError(f"hparams {sorted(hparams)} are only for built-in models {sorted(MODELS)}; bind them in your factory")
    model = factory(features, task, num_classes)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model factory {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _resolve(name: str | ModelFactory) -> ModelFactory:
    if callable(name):
        return name
    if isinstance(name, str) and ":" in name:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)
    raise ValueError(f"unknown model {name!r}: use one of {sorted(MODELS)}, a factory function, or 'package.module:function'")


def _jsonable(embedding_dim: int | Mapping[str, int] | None) -> int | dict[str, int] | None:
    return dict(embedding_dim) if isinstance(embedding_dim, Mapping) else embedding_dim


MODELS: dict[str, type[_Base]] = {
    "logistic_regression": LogisticRegression,
    "mlp": MLP,
    "wide_and_deep": WideAndDeep,
}

# DeepFM and DCN-v2 live in their own module and add themselves to MODELS ("deepfm", "dcn_v2").
import sluice.train.interactions  # noqa: E402,F401 - after MODELS: it builds on the classes above
