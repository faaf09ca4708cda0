"""SparseGradSync in two real gloo processes: every table's gradient becomes the exact mean of
the workers' gradients, the same on both ranks, whatever rows each rank touched."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sluice.train.distributed import free_port
from sluice.train.sparse_sync import SparseGradSync


class _Tables(nn.Module):
    """Two widths (4 and 1), one table no rank touches, one only rank 1 touches, a dense layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Embedding(50, 4, sparse=True)
        self.b = nn.Embedding(30, 4, sparse=True)
        self.wide = nn.Embedding(70, 1, sparse=True)
        self.unused = nn.Embedding(10, 4, sparse=True)
        self.dense = nn.Linear(3, 1)


def _batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(rank)
    return {"a": torch.randint(0, 50, (40 + 17 * rank,), generator=g),  # repeats: uncoalesced gradients
            "b": torch.randint(0, 30, (25,), generator=g) if rank == 1 else torch.zeros(0, dtype=torch.long),
            "wide": torch.randint(0, 70, (90,), generator=g)}


def _loss(model: _Tables, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    total = sum((getattr(model, k)(ids) * torch.arange(1.0, 1 + getattr(model, k).embedding_dim)).sum() * (i + 1)
                for i, (k, ids) in enumerate(batch.items()) if len(ids))
    return total + model.dense(torch.ones(1, 3)).sum()


def _worker(rank: int, port: int, out: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = _Tables()
    sync = SparseGradSync(model)
    _loss(model, _batch(rank)).backward()
    sync()
    grads = {n: (p.grad.to_dense() if p.grad is not None else None) for n, p in model.named_parameters()
             if n != "dense.weight" and n != "dense.bias"}
    torch.save({"names": sync.names, "grads": grads}, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_exchanged_gradients_are_the_mean_over_workers(tmp_path):
    mp.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    torch.manual_seed(0)
    expected: dict[str, torch.Tensor] = {}
    for rank in (0, 1):  # the dense gradient of each rank's loss, computed here in one process
        model = _Tables()
        _loss(model, _batch(rank)).backward()
        for n, p in model.named_parameters():
            if p.grad is not None and not n.startswith("dense"):
                dense = p.grad.to_dense() / 2
                expected[n] = expected[n] + dense if n in expected else dense
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert results[0]["names"] == ["a.weight", "b.weight", "wide.weight", "unused.weight"]
    for got in results:
        assert got["grads"]["unused.weight"] is None  # nobody touched it: no gradient, as without DDP
        for name in ("a.weight", "b.weight", "wide.weight"):
            torch.testing.assert_close(got["grads"][name], expected[name], rtol=0, atol=1e-6)
    assert float(expected["b.weight"].abs().sum()) > 0  # rank 1's rows reached rank 0 too


def test_in_one_process_gradients_are_coalesced_with_the_same_values():
    torch.manual_seed(0)
    model = _Tables()
    _loss(model, _batch(1)).backward()
    before = {n: p.grad.to_dense() for n, p in model.named_parameters() if p.grad is not None and p.grad.is_sparse}
    SparseGradSync(model)()  # no process group: only coalesces
    for n, p in model.named_parameters():
        if n in before:
            assert p.grad.is_coalesced()
            torch.testing.assert_close(p.grad.to_dense(), before[n], rtol=0, atol=1e-6)
    assert model.unused.weight.grad is None and set(before) == {"a.weight", "b.weight", "wide.weight"}
