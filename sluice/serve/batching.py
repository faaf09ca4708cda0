"""Dynamic micro-batching: concurrent requests for one model version run as one inference.

Requests queue up; a worker task takes the first and everything already queued,
up to ``max_batch_size`` rows, and runs the model once in a worker thread (off the
event loop), handing each request its slice of the outputs. Up to
``max_concurrency`` batches run at once; while they run the queue fills, so under
load batches grow by themselves. A request arriving at an idle model is not held
back; when other batches are running, a batch waits up to ``max_wait`` seconds to fill.

Example::

    batcher = MicroBatcher(servable.predict, max_batch_size=256, max_wait=0.002, executor=pool)
    outputs = await batcher.submit(table)      # {"probability": array of len(table)}
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

PredictFn = Callable[[Any], dict[str, np.ndarray]]
_CLOSE = object()


@dataclass
class Block:
    """Checked request values, one list per input feature (Arrow conversion happens once per batch)."""

    columns: dict[str, list[Any]]
    num_rows: int


def combine_blocks(blocks: list[Block]) -> Block:
    """Several requests' blocks as one (feature lists concatenated in order)."""
    if len(blocks) == 1:
        return blocks[0]
    columns = {name: [v for b in blocks for v in b.columns[name]] for name in blocks[0].columns}
    return Block(columns, sum(b.num_rows for b in blocks))


class MicroBatcher:
    """Collects requests into batches for one model version; see the module docstring."""

    def __init__(self, predict: PredictFn, *, max_batch_size: int = 256, max_wait: float = 0.002,
                 max_concurrency: int = 2, executor: Executor | None = None,
                 on_batch: Callable[[int], None] | None = None,
                 combine: Callable[[list[Any]], Any] | None = None) -> None:
        self.predict = predict
        self.combine = combine or pa.concat_tables
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_concurrency = max_concurrency
        self.executor = executor
        self.on_batch = on_batch
        self._queue: asyncio.Queue[Any] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, table: Any) -> dict[str, np.ndarray]:
        """Predict ``table`` (a pa.Table, or any item with ``num_rows`` that ``combine`` joins) as part of
        a batch; returns this item's rows of every output."""
        loop = asyncio.get_running_loop()
        if self._closed:  # swapped out while this request was on its way: run it alone
            return await loop.run_in_executor(self.executor, self._run, table)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(self.max_concurrency)
            self._worker = loop.create_task(self._work())
        future: asyncio.Future[dict[str, np.ndarray]] = loop.create_future()
        self._queue.put_nowait((table, future))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop (call on the event loop)."""
        self._closed = True
        if self._queue is not None:
            self._queue.put_nowait(_CLOSE)

    async def aclose(self) -> None:
        self.close()
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def _run(self, table: Any) -> dict[str, np.ndarray]:
        if self.on_batch is not None:
            self.on_batch(table.num_rows)
        return self.predict(table)

    async def _work(self) -> None:
        assert self._queue is not None and self._slots is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        carry = None
        while True:
            item = carry if carry is not None else await queue.get()
            carry = None
            if item is _CLOSE:
                break
            await self._slots.acquire()  # while every slot is busy, the queue keeps filling
            batch, rows = [item], item[0].num_rows
            deadline = loop.time() + self.max_wait
            stop = False
            while rows < self.max_batch_size:
                try:
                    nxt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    timeout = deadline - loop.time()
                    if not self._running or timeout <= 0:  # idle model: do not hold the request back
                        break
                    try:
                        nxt = await asyncio.wait_for(queue.get(), timeout)
                    except asyncio.TimeoutError:
                        break
                if nxt is _CLOSE:
                    stop = True
                    break
                if rows + nxt[0].num_rows > self.max_batch_size:
                    carry = nxt
                    break
                batch.append(nxt)
                rows += nxt[0].num_rows
            task = loop.create_task(self._dispatch(loop, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if stop:
                break
        if self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _dispatch(self, loop: asyncio.AbstractEventLoop, batch: list[Any]) -> None:
        assert self._slots is not None
        tables = [t for t, _ in batch]
        try:
            table = tables[0] if len(tables) == 1 else self.combine(tables)
            out = await loop.run_in_executor(self.executor, self._run, table)
        except Exception as exc:  # the model failed: every request of the batch gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._slots.release()
        start = 0
        for t, future in batch:
            end = start + t.num_rows
            if not future.done():
                future.set_result({k: v[start:end] for k, v in out.items()})
            start = end
