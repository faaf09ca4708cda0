"""A bounded HTTP/1.1 load generator for the serving benchmark (asyncio, keep-alive, no dependencies).

- closed loop: N clients, each sends its next request when the previous answer arrives;
- open loop: requests start at a fixed rate whatever the server does; latency counts from the
  scheduled start (no coordinated omission); at most ``max_inflight`` requests are outstanding,
  requests beyond that are counted as errors ("dropped"), as are timeouts and non-200 answers.

Example::

    stats = asyncio.run(closed_loop("127.0.0.1", 8500, "/v1/models/ctr:predict", bodies, clients=16, seconds=5))
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

TIMEOUT_S = 10.0


@dataclass
class LoadStats:
    """What one load run measured."""

    mode: str
    requests: int = 0
    errors: int = 0
    rows: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def pct(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0

    def summary(self) -> dict:
        ok = self.requests - self.errors
        return {"mode": self.mode, "requests": self.requests, "ok": ok, "errors": self.errors,
                "error_kinds": self.error_kinds, "req_per_s": round(ok / self.seconds, 1) if self.seconds else 0.0,
                "rows_per_s": round(self.rows / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": _round(self.pct(0.50)), "p99_ms": _round(self.pct(0.99))}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def encode(host: str, port: int, path: str, body: bytes, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"content-length:")
    if i >= 0:
        n = int(lower[i + 15:lower.index(b"\r\n", i)])
        await reader.readexactly(n)
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def closed_loop(host: str, port: int, path: str, bodies: list[tuple[bytes, int]], *, clients: int,
                      seconds: float) -> LoadStats:
    """``clients`` connections sending back to back for ``seconds``; bodies are (JSON bytes, rows)."""
    stats = LoadStats(f"closed x{clients}")
    raws = [(encode(host, port, path, b), n) for b, n in bodies]
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        reader = writer = None
        i = k
        while time.perf_counter() < deadline:
            raw, n = raws[i % len(raws)]
            i += clients
            start = time.perf_counter()
            stats.requests += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                status = await asyncio.wait_for(_exchange(reader, writer, raw), TIMEOUT_S)
            except Exception as exc:
                stats.error(type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if status != 200:
                stats.error(f"http {status}")
                continue
            stats.latencies.append(time.perf_counter() - start)
            stats.rows += n
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    stats.seconds = time.perf_counter() - t0
    return stats


async def open_loop(host: str, port: int, path: str, bodies: list[tuple[bytes, int]], *, rate: float,
                    seconds: float, max_inflight: int = 256) -> LoadStats:
    """Requests started at ``rate`` per second for ``seconds``, on a pool of keep-alive connections."""
    stats = LoadStats(f"open {rate:g}/s")
    raws = [(encode(host, port, path, b), n) for b, n in bodies]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    inflight = 0
    tasks = []

    async def one(raw: bytes, n: int, scheduled: float) -> None:
        nonlocal inflight
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            status = await asyncio.wait_for(_exchange(conn[0], conn[1], raw), TIMEOUT_S)
        except Exception as exc:
            stats.error(type(exc).__name__)
            if conn is not None:
                conn[1].close()
            inflight -= 1
            return
        inflight -= 1
        idle.append(conn)
        if status != 200:
            stats.error(f"http {status}")
            return
        stats.latencies.append(time.perf_counter() - scheduled)
        stats.rows += n

    total = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        stats.requests += 1
        if inflight >= max_inflight:
            stats.error("dropped (too many in flight)")
            continue
        inflight += 1
        raw, n = raws[i % len(raws)]
        tasks.append(asyncio.ensure_future(one(raw, n, scheduled)))
    await asyncio.gather(*tasks)
    stats.seconds = max(seconds, time.perf_counter() - t0)
    for _, writer in idle:
        writer.close()
    return stats
