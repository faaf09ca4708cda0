"""Feature-interaction models for click-through data: DeepFM and DCN-v2.

Both follow the model contract of :mod:`sluice.train.models` (``forward(dense, sparse)`` ->
logits) and size embedding tables from the feature specs' cardinalities (the transform's
vocabularies). Both are registered in :data:`sluice.train.models.MODELS`.

Example::

    model = build_model("deepfm", specs, "binary", embedding_dim=16, hidden=(128, 64), seed=0)
    model = build_model("dcn_v2", specs, "binary", cross_layers=3, low_rank=32, seed=0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from sluice.features import FeatureSpec
from sluice.train.models import MLP, MODELS, _Base, _Embeddings, _jsonable, _mlp, _Wide, default_embedding_dim

__all__ = ["DCNv2", "DeepFM"]


class DeepFM(_Base):
    """DeepFM (Guo et al., 2017): a factorization machine and an MLP sharing field embeddings.

    Every field gets a ``k``-wide vector: a categorical feature its id's embedding, a numeric
    feature ``value * v_j`` (one learned vector per numeric column). The FM part adds first-order
    weights and all pairwise dot products ``<v_i, v_j>`` (computed in O(fields * k) as
    ``((sum v)^2 - sum v^2) / 2``); the deep part is an MLP over the concatenated vectors. Logits
    are summed. All fields share one width ``embedding_dim`` (FM needs it); by default it is
    ``min(16, default_embedding_dim(largest vocabulary))``.

    Hyperparameters: ``embedding_dim``, ``hidden``, ``dropout``.
    """

    name = "deepfm"

    def __init__(self, features: Sequence[FeatureSpec], task: str = "binary", num_classes: int | None = None,
                 embedding_dim: int | None = None, hidden: Sequence[int] = (256, 128), dropout: float = 0.0) -> None:
        super().__init__(features, task, num_classes)
        cards = [c for _, c in self.categorical]
        if embedding_dim is not None and not isinstance(embedding_dim, int):
            raise TypeError(f"deepfm needs one embedding width for every field (an int), got {embedding_dim!r}")
        k = int(embedding_dim or min(16, default_embedding_dim(max(cards, default=2))))
        self.hparams = {"embedding_dim": k, "hidden": list(hidden), "dropout": dropout}
        self.embeddings = _Embeddings(self.categorical, k)
        for table in self.embeddings.tables:  # N(0, 1) would make the ~fields^2 pairwise sum explode
            nn.init.normal_(table.weight, std=0.01)
        self.numeric_vectors = nn.Parameter(torch.randn(self.n_numeric, k) * 0.01)
        self.wide = _Wide(cards, self.out_dim)
        self.dense_linear = nn.Linear(self.n_numeric, self.out_dim) if self.n_numeric else None
        fields = self.n_numeric + len(cards)
        self.fm_out = nn.Linear(1, self.out_dim, bias=False)  # FM term to every logit (1 for binary)
        nn.init.ones_(self.fm_out.weight)
        self.deep = _mlp(fields * k, hidden, self.out_dim, dropout)
        self.k = k

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        b = dense.shape[0]
        cat = self.embeddings(sparse).view(b, -1, self.k)                  # [B, n_cat, k]
        num = dense.unsqueeze(-1) * self.numeric_vectors                    # [B, n_num, k]
        v = torch.cat([num, cat], dim=1)                                    # [B, fields, k]
        pairwise = 0.5 * (v.sum(1).pow(2) - v.pow(2).sum(1)).sum(1, keepdim=True)  # [B, 1]
        out = self.wide(sparse) + self.fm_out(pairwise) + self.deep(v.flatten(1))
        if self.dense_linear is not None:
            out = out + self.dense_linear(dense)
        return self._logits(out)


class _Cross(nn.Module):
    """One DCN-v2 cross layer: ``x0 * (W x + b) + x``, ``W`` full or low-rank ``U @ V``."""

    def __init__(self, width: int, low_rank: int | None) -> None:
        super().__init__()
        if low_rank:
            self.v = nn.Linear(width, low_rank, bias=False)
            self.u = nn.Linear(low_rank, width)
        else:
            self.w = nn.Linear(width, width)
        self.low_rank = low_rank

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * (self.u(self.v(x)) if self.low_rank else self.w(x)) + x


class DCNv2(MLP):
    """DCN-v2 (Wang et al., 2021), stacked: ``cross_layers`` explicit-interaction layers over
    ``x0 = [dense, embeddings]``, then an MLP. ``low_rank=r`` factorizes each cross matrix as
    ``U (d x r) @ V (r x d)`` (cheaper for wide inputs). Embedding widths as :class:`MLP`.

    Hyperparameters: ``cross_layers``, ``low_rank``, ``hidden``, ``dropout``, ``embedding_dim``.
    """

    name = "dcn_v2"

    def __init__(self, features: Sequence[FeatureSpec], task: str = "binary", num_classes: int | None = None,
                 cross_layers: int = 3, low_rank: int | None = None, hidden: Sequence[int] = (256, 128),
                 dropout: float = 0.0, embedding_dim: int | Mapping[str, int] | None = None) -> None:
        super().__init__(features, task, num_classes, hidden, dropout, embedding_dim)
        width = self.n_numeric + self.embeddings.width
        self.hparams = {"cross_layers": cross_layers, "low_rank": low_rank, "hidden": list(hidden),
                        "dropout": dropout, "embedding_dim": _jsonable(embedding_dim)}
        self.cross = nn.ModuleList(_Cross(width, low_rank) for _ in range(cross_layers))
        for table in self.embeddings.tables:  # x0 * (W x) is quadratic in x0: keep it near 1 at the start
            nn.init.normal_(table.weight, std=0.05)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat([dense, self.embeddings(sparse)], dim=1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self._logits(self.deep(x))


MODELS.update({DeepFM.name: DeepFM, DCNv2.name: DCNv2})
