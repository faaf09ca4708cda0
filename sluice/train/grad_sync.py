"""Average gradients across data-parallel CPU workers in one collective per step: the rows of
the sparse embedding tables a step touched, and the model's other (dense) gradients beside them.

A CTR step touches a small part of its embedding tables: 4,096 rows x 42 features hit ~12,600
distinct rows of 275,000. DistributedDataParallel offers two ways to sync such tables, and both
cost more than they need to: dense gradients all-reduce every row of every table each step
(4.4M values: 13 ms over gloo on 127.0.0.1, plus a dense backward and a dense Adam over all
rows), and gloo's sparse all-reduce goes table by table (43 collectives per step, slower still).

:class:`GradSync` keeps those tables out of DDP. After backward each worker deduplicates its
touched rows per embedding width (all tables of one width as one id space) and packs them, with
its dense gradients, into one byte buffer; one ``all_gather`` hands every worker everybody's
buffer. Every worker then sums the rows and the dense gradients and divides by the world size,
exactly DDP's mean; the optimizers update the same rows the same way on every worker, so the
model stays identical without being sent.

Why one collective: on 127.0.0.1 a gloo collective costs a round trip of two busy processes'
scheduling, not bandwidth. Five all-gathers of a CTR step's ~1 MB took 4.2 ms (median; 10 ms at
p90) between two idle processes, one packed all-gather 2.2 ms (6 ms); in training, packing the
rows and the dense gradients together took two workers from 82k to 91-93k samples/s on 1M CTR
rows (benchmarks/training.py).

Buffers must have one size on every worker, and a worker's row count is known only to itself:
the sparse sections are sized from the largest counts of the step before (plus a quarter). A step
that overflows them on any worker (the first one, or a rare larger batch) repeats the exchange
at the exact sizes, which every worker learned from the headers of the first.

The dense gradients ride along only while every worker receiving all of them stays cheap
(``world x`` their bytes up to ``dense_limit``) and the model has no floating-point buffers
(BatchNorm statistics, which DDP broadcasts from rank 0); otherwise DDP keeps the dense part
(see :attr:`GradSync.replaces_ddp`).

In one process (no group) it only coalesces: each width's rows deduplicated at once with a
marker array, and SparseAdam handed gradients flagged coalesced. SparseAdam's own coalesce,
table by table, took 26 of a CTR step's ~88 ms; with this the step took ~77 ms.

Example (in each of N processes, after ``dist.init_process_group``)::

    sync = GradSync(model)
    net = model if sync.replaces_ddp else DistributedDataParallel(model)  # after sync.exclude_from(model)
    loss_fn(net(dense, sparse), y).backward()
    sync()                                  # every .grad is now the mean over workers
    optimizer.step()
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from sluice.train.optim import EMBEDDINGS

__all__ = ["GradSync"]

_DENSE_LIMIT = 64 << 20  # bytes of dense gradients a worker may receive per step (world x its own)
_ALIGN = 8  # sections start at multiples of 8 bytes, so that any dtype can view them


class GradSync:
    """Mean over the default process group of ``model``'s gradients: the sparse gradients of its
    ``nn.Embedding(sparse=True)`` and ``nn.EmbeddingBag(sparse=True)`` tables (only the rows each
    worker touched travel) and, when :attr:`replaces_ddp`, all its other gradients, in one
    ``all_gather`` per step."""

    def __init__(self, model: nn.Module, *, dense_limit: int = _DENSE_LIMIT) -> None:
        named = [(f"{prefix}.weight" if prefix else "weight", m.weight) for prefix, m in model.named_modules()
                 if isinstance(m, EMBEDDINGS) and m.sparse and m.weight.requires_grad]
        self.names = [n for n, _ in named]
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        by_width: dict[tuple[int, torch.dtype], list[torch.Tensor]] = {}
        for _, p in named:  # one section per row width and dtype
            by_width.setdefault((p.shape[1], p.dtype), []).append(p)
        self.groups = [_Group(params) for params in by_width.values()]
        tables = {id(p) for _, p in named}
        others = [p for p in model.parameters() if p.requires_grad and id(p) not in tables]
        size = sum(p.numel() * p.element_size() for p in others)
        buffers = any(b.is_floating_point() for b in model.buffers())
        carry = self.world > 1 and bool(self.groups) and not buffers and size * self.world <= dense_limit
        self.dense = others if carry else []
        #: True when every trained parameter is synced here and the model needs no DDP wrapper.
        self.replaces_ddp = self.world > 1 and bool(self.groups) and len(self.dense) == len(others)
        self._caps = [0] * len(self.groups)  # rows each worker's sparse sections hold this step
        # A packet starts with a header (each group's row count, a has-gradient flag per dense
        # parameter), then each dense gradient at a fixed (start, bytes), then the groups' sections.
        self._header = 8 * (len(self.groups) + len(self.dense))
        self._dense_slots, end = [], self._header
        for p in self.dense:
            size = p.numel() * p.element_size()
            self._dense_slots.append((end, size))
            end += _aligned(size)
        self._sparse_start = end

    def __bool__(self) -> bool:
        return bool(self.groups)

    def exclude_from(self, model: nn.Module) -> None:
        """Tell DistributedDataParallel (constructed next, on ``model``) to leave the tables alone."""
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, self.names)

    def __call__(self) -> None:
        """Replace each gradient this object syncs by its mean over all workers."""
        local = [g.local_rows() for g in self.groups]
        if self.world == 1:  # nothing to exchange: hand SparseAdam its gradients already coalesced
            for group, (ids, values) in zip(self.groups, local):
                group.set_grads(ids, values)
            return
        caps = self._caps
        packets = self._exchange(local, caps)
        headers = torch.stack([p[:self._header].view(torch.int64) for p in packets])  # world x (groups + dense)
        counts = headers[:, :len(self.groups)]
        most = counts.max(0).values.tolist()
        if any(n > c for n, c in zip(most, caps)):  # some worker's rows did not fit: again, exactly sized
            caps = most
            packets = self._exchange(local, caps)
        self._caps = [n + n // 4 + 64 for n in most]
        self._set_dense(packets, headers[:, len(self.groups):].any(0).tolist())
        for k, (group, start, cap) in enumerate(zip(self.groups, self._sections(caps), caps)):
            parts = [group.unpack(p, start, cap, int(n)) for p, n in zip(packets, counts[:, k])]
            ids, values = _sum_rows(torch.cat([i for i, _ in parts]), torch.cat([v for _, v in parts]), group.size)
            group.set_grads(ids, values / self.world)

    def _sections(self, caps: list[int]) -> list[int]:
        """Byte offsets of each group's section in a packet whose sections hold ``caps`` rows,
        and of the packet's end."""
        offsets = [self._sparse_start]
        for group, cap in zip(self.groups, caps):
            offsets.append(offsets[-1] + group.section_bytes(cap))
        return offsets

    def _exchange(self, local: list[tuple[torch.Tensor, torch.Tensor]], caps: list[int]) -> list[torch.Tensor]:
        """Every worker's packet (this worker's rows, at most ``caps`` per group, and dense gradients)."""
        sections = self._sections(caps)
        packet = torch.empty(sections[-1], dtype=torch.uint8)
        header = [len(ids) for ids, _ in local] + [int(p.grad is not None) for p in self.dense]
        packet[:self._header].view(torch.int64).copy_(torch.tensor(header, dtype=torch.int64))
        for p, (start, size) in zip(self.dense, self._dense_slots):
            view = packet[start:start + size].view(p.dtype)
            if p.grad is None:  # unused this step: counts as zeros in the mean
                view.zero_()
            else:
                view.copy_(p.grad.reshape(-1))
        for group, (ids, values), start, cap in zip(self.groups, local, sections, caps):
            group.pack(packet, start, cap, ids, values)
        packets = [torch.empty_like(packet) for _ in range(self.world)]
        dist.all_gather(packets, packet)
        return packets

    def _set_dense(self, packets: list[torch.Tensor], had_grad: list[bool]) -> None:
        """Each dense gradient becomes the mean of the workers'; None where no worker had one."""
        for p, (start, size), anyone in zip(self.dense, self._dense_slots, had_grad):
            if anyone:
                total = sum(packet[start:start + size].view(p.dtype) for packet in packets)
                p.grad = (total / self.world).view_as(p)


class _Group:
    """Tables of one width seen as one: table ``i``'s row ``j`` is row ``starts[i] + j``."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        sizes = torch.tensor([p.shape[0] for p in params], dtype=torch.int64)
        self.starts = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
        self.size = int(self.starts[-1])  # rows of all its tables
        self.width, self.dtype = params[0].shape[1], params[0].dtype
        self.row_bytes = self.width * params[0].element_size()

    def local_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This worker's gradient as (sorted distinct row ids, summed gradient rows)."""
        ids, values = [], []
        for p, start in zip(self.params, self.starts.tolist()):
            g = p.grad
            if g is None:
                continue
            if not g.is_sparse:
                raise ValueError("GradSync expects sparse gradients (nn.Embedding(sparse=True)); "
                                 f"a table of shape {tuple(p.shape)} has a dense one")
            ids.append(g._indices()[0] + start)
            values.append(g._values())
        if not ids:
            return torch.zeros(0, dtype=torch.int64), torch.zeros((0, self.width), dtype=self.dtype)
        return _sum_rows(torch.cat(ids), torch.cat(values), self.size)

    def section_bytes(self, cap: int) -> int:
        """Bytes of a packet section for ``cap`` rows: their ids (int64), then their values."""
        return 8 * cap + _aligned(cap * self.row_bytes)

    def pack(self, packet: torch.Tensor, start: int, cap: int, ids: torch.Tensor, values: torch.Tensor) -> None:
        n = min(len(ids), cap)  # an overflowing worker sends what fits; the exchange is repeated
        packet[start:start + 8 * n].view(torch.int64).copy_(ids[:n])
        values_at = start + 8 * cap
        packet[values_at:values_at + n * self.row_bytes].view(self.dtype).copy_(values[:n].reshape(-1))

    def unpack(self, packet: torch.Tensor, start: int, cap: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        values_at = start + 8 * cap
        return (packet[start:start + 8 * n].view(torch.int64),
                packet[values_at:values_at + n * self.row_bytes].view(self.dtype).view(n, self.width))

    def set_grads(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        """Give each table its slice of the (sorted, distinct) rows as a coalesced sparse gradient,
        so that SparseAdam need not sort it again; a table with no rows gets none (it is skipped,
        as it would be in one process)."""
        bounds = torch.searchsorted(ids, self.starts).tolist()
        for p, start, a, b in zip(self.params, self.starts.tolist(), bounds, bounds[1:]):
            p.grad = None if a == b else torch.sparse_coo_tensor(
                (ids[a:b] - start).unsqueeze(0), values[a:b], p.shape, is_coalesced=True, check_invariants=False)


def _sum_rows(ids: torch.Tensor, values: torch.Tensor, space: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted distinct ``ids`` (in ``[0, space)``) with the sum of their ``values`` rows: a
    coalesce, without the sparse tensor. While the id space is small next to the ids, a marker
    array over it finds the distinct ids in linear time (172k ids in 275k rows: 1.9 ms against
    torch.unique's 2.8); past that, ``torch.unique`` sorts. The sum is an accumulating
    ``index_put_``: on CPU ``index_add_`` goes row by row (180k rows of 16: 5.8 ms against 3.0)."""
    if space <= 32 * len(ids):
        seen = torch.zeros(space, dtype=torch.bool)
        seen[ids] = True
        distinct = seen.nonzero().squeeze(1)
        inverse = (seen.cumsum(0) - 1)[ids]
    else:
        distinct, inverse = torch.unique(ids, sorted=True, return_inverse=True)
    return distinct, values.new_zeros((len(distinct), values.shape[1])).index_put_((inverse,), values, accumulate=True)


def _aligned(nbytes: int) -> int:
    return -(-nbytes // _ALIGN) * _ALIGN
