"""GradSync in two real gloo processes: every gradient, sparse table or dense layer, becomes the
exact mean of the workers' gradients, the same on both ranks, whatever rows each rank touched,
also on a step whose rows overflow the packet sizes learned from the step before."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sluice.train.distributed import free_port
from sluice.train.grad_sync import GradSync


class _Tables(nn.Module):
    """Two widths (4 and 1), one table no rank touches, one only rank 1 touches; dense layers used
    by both ranks, by rank 1 only, and by nobody."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Embedding(500, 4, sparse=True)
        self.b = nn.Embedding(30, 4, sparse=True)
        self.wide = nn.Embedding(70, 1, sparse=True)
        self.unused = nn.Embedding(10, 4, sparse=True)
        self.bag = nn.EmbeddingBag(40, 4, mode="sum", sparse=True)
        self.dense = nn.Linear(3, 1)
        self.rank1_only = nn.Linear(2, 1)
        self.never = nn.Linear(2, 2)


STEPS = (40, 400, 30)  # ids of table ``a`` per step: the second overflows the sizes learned from the first


def _batch(rank: int, step: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(10 * step + rank)
    return {"a": torch.randint(0, 500, (STEPS[step] + 17 * rank,), generator=g),  # repeats: uncoalesced
            "b": torch.randint(0, 30, (25,), generator=g) if rank == 1 else torch.zeros(0, dtype=torch.long),
            "wide": torch.randint(0, 70, (90,), generator=g)}


def _loss(model: _Tables, rank: int, step: int) -> torch.Tensor:
    batch = _batch(rank, step)
    total = sum((getattr(model, k)(ids) * torch.arange(1.0, 1 + getattr(model, k).embedding_dim)).sum() * (i + 1)
                for i, (k, ids) in enumerate(batch.items()) if len(ids))
    bags = torch.randint(0, 40, (6, 3 + rank), generator=torch.Generator().manual_seed(step + 7 * rank))
    total = total + model.bag(bags).sum() * 5 + model.dense(torch.full((1, 3), rank + 1.0)).sum()
    return total + model.rank1_only(torch.ones(1, 2)).sum() * 3 if rank == 1 else total


def _grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: (p.grad.to_dense() if p.grad is not None else None) for n, p in model.named_parameters()}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = _Tables()
    sync = GradSync(model)
    steps = []
    for step in range(len(STEPS)):
        model.zero_grad(set_to_none=True)
        _loss(model, rank, step).backward()
        sync()
        steps.append(_grads(model))
    with_stats = nn.Sequential(nn.Embedding(5, 2, sparse=True), nn.BatchNorm1d(2))
    also = {"batchnorm": GradSync(with_stats).replaces_ddp, "over_limit": GradSync(model, dense_limit=100).replaces_ddp}
    torch.save({"names": sync.names, "replaces_ddp": sync.replaces_ddp, "steps": steps, "also": also},
               os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_exchanged_gradients_are_the_mean_over_workers(tmp_path):
    mp.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert results[0]["names"] == ["a.weight", "b.weight", "wide.weight", "unused.weight", "bag.weight"]
    assert results[0]["replaces_ddp"]  # small dense layers ride along: no DDP needed
    # DDP keeps the dense part of a model with BatchNorm statistics, or with too many dense bytes
    assert results[0]["also"] == {"batchnorm": False, "over_limit": False}
    torch.manual_seed(0)
    model = _Tables()
    for step in range(len(STEPS)):
        expected: dict[str, torch.Tensor] = {}
        for rank in (0, 1):  # each rank's gradient, computed here in one process
            model.zero_grad(set_to_none=True)
            _loss(model, rank, step).backward()
            for n, g in _grads(model).items():
                if g is not None:
                    expected[n] = expected[n] + g / 2 if n in expected else g / 2
        assert set(expected) == {"a.weight", "b.weight", "wide.weight", "bag.weight", "dense.weight", "dense.bias",
                                 "rank1_only.weight", "rank1_only.bias"}
        assert float(expected["b.weight"].abs().sum()) > 0  # rank 1's rows reach rank 0 too
        for got in results:
            grads = got["steps"][step]
            assert grads["unused.weight"] is None  # nobody touched it: no gradient, as without DDP
            assert grads["never.weight"] is None and grads["never.bias"] is None
            for name, want in expected.items():
                torch.testing.assert_close(grads[name], want, rtol=0, atol=1e-6, msg=f"step {step}: {name}")


def test_in_one_process_gradients_are_coalesced_with_the_same_values():
    torch.manual_seed(0)
    model = _Tables()
    _loss(model, 1, 0).backward()
    before = {n: p.grad.to_dense() for n, p in model.named_parameters() if p.grad is not None and p.grad.is_sparse}
    GradSync(model)()  # no process group: only coalesces
    for n, p in model.named_parameters():
        if n in before:
            assert p.grad.is_coalesced()
            torch.testing.assert_close(p.grad.to_dense(), before[n], rtol=0, atol=1e-6)
    assert model.unused.weight.grad is None and set(before) == {"a.weight", "b.weight", "wide.weight", "bag.weight"}
