"""A stable, vectorized string hash: 64-bit FNV-1a over each value's UTF-8 text.

Python's ``hash()`` is salted per process and pyarrow has no stable hash
kernel, so hash buckets and feature crosses use FNV-1a, which is fixed by its
definition: a model trained today and a server started next year agree on
every bucket. Two tricks keep it fast:

- values are dictionary-encoded first, so each distinct value is hashed once
  per batch (a million rows of a 1000-value column hash 1000 strings), unless
  a sample shows them mostly distinct, where encoding would cost more than it saves;
- the distinct strings are hashed all at once with numpy, one byte position
  at a time, longest strings first so each step works on a shrinking prefix.

Nulls hash like the empty string.

Example::

    stable_hash(pa.array(["a", "b", None]))
    # array([12638187200555641996, 12638190499090526629, 14695981039346656037], dtype=uint64)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.transform.dtypes import to_text

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def fnv1a_64(strings: pa.Array) -> np.ndarray:
    """FNV-1a 64 of each string's UTF-8 bytes (nulls as ``""``), as uint64.

    Example::

        hex(int(fnv1a_64(pa.array(["a"]))[0]))   # '0xaf63dc4c8601ec8c'
    """
    strings = to_text(strings)
    n = len(strings)
    if 0 < n <= SMALL_BATCH:
        return _fnv1a_64_small(strings)
    out = np.full(n, FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return out
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[strings.offset: strings.offset + n + 1]
    lengths = np.diff(offsets)
    if strings.null_count:
        lengths = np.where(strings.is_null().to_numpy(zero_copy_only=False), 0, lengths)
    if data_buf is None or not lengths.any():
        return out
    data = np.frombuffer(data_buf, dtype=np.uint8)
    maxlen = int(lengths.max())
    starts = offsets[:-1]
    # Longest first: at byte position j only the first active[j] strings are still going.
    # (A uint16 key lets numpy use a linear-time radix sort; equal lengths need no sort.)
    order = None
    if int(lengths.min()) != maxlen:
        key = (maxlen - lengths).astype(np.uint16 if maxlen < 65536 else np.int64)
        order = np.argsort(key, kind="stable")
        starts, lengths = starts[order], lengths[order]
    active = n - np.cumsum(np.bincount(lengths, minlength=maxlen))[:maxlen]
    h = out
    for j, k in enumerate(active.tolist()):
        head = h[:k]
        head ^= data[starts[:k] + j].astype(np.uint64)
        head *= FNV_PRIME  # wraps modulo 2**64, as FNV requires
    if order is None:
        return h
    out = np.empty_like(h)
    out[order] = h
    return out


SMALL_BATCH = 16  # a serving request: per-byte numpy passes cost more than a Python loop


def _fnv1a_64_small(strings: pa.Array) -> np.ndarray:
    """The same hash for a handful of strings, byte by byte in Python."""
    mask, prime = (1 << 64) - 1, int(FNV_PRIME)
    out = np.empty(len(strings), dtype=np.uint64)
    for i, value in enumerate(strings.to_pylist()):
        h = int(FNV_OFFSET)
        for byte in (value or "").encode("utf-8"):
            h = ((h ^ byte) * prime) & mask
        out[i] = h
    return out


def _mostly_distinct(values: pa.Array, sample: int = 2048) -> bool:
    """Whether a strided sample has mostly distinct values (ids, keys), where encoding would not pay."""
    step = max(1, len(values) // sample)
    probe = values.take(np.arange(0, len(values), step)[:sample])
    return pc.count_distinct(probe).as_py() > len(probe) // 2


def stable_hash(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """FNV-1a 64 of each value's text (see :func:`sluice.transform.dtypes.to_text`), as uint64.

    Repetitive columns hash their distinct values only (dictionary encoding);
    mostly-distinct ones (user ids) hash row by row, which is then cheaper.
    Both routes give the same numbers.

    Example::

        stable_hash(pa.array([7, 7, None])) % 100   # same bucket for both 7s, every process
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_null(values.type):
        return np.full(len(values), FNV_OFFSET, dtype=np.uint64)
    if len(values) <= SMALL_BATCH:  # a serving request: sampling and encoding cost more than hashing
        return fnv1a_64(values)
    if not pa.types.is_dictionary(values.type) and _mostly_distinct(values):
        return fnv1a_64(values)
    encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
    hashes = np.append(fnv1a_64(encoded.dictionary), FNV_OFFSET)  # last slot: null -> hash("")
    indices = pc.fill_null(encoded.indices, len(hashes) - 1).to_numpy(zero_copy_only=False)
    return hashes[indices]


def mix64(hashes: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: spreads every input bit over the low bits a modulo keeps.

    FNV's low bits depend only on the inputs' low bits, which would bias
    ``hash % num_buckets``; mixing first makes buckets uniform.
    """
    h = hashes.astype(np.uint64, copy=True)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def combine(hashes: list[np.ndarray]) -> np.ndarray:
    """One hash per row from several per-column hashes, FNV-1a style over 64-bit words (order matters)."""
    h = np.full(len(hashes[0]), FNV_OFFSET, dtype=np.uint64)
    for part in hashes:
        h ^= part
        h *= FNV_PRIME
    return h


def to_buckets(hashes: np.ndarray, num_buckets: int) -> np.ndarray:
    """Bucket ids in ``[0, num_buckets)`` as int64: ``mix64(hash) % num_buckets``.

    Example::

        to_buckets(stable_hash(pa.array(["DE", "FR"])), 1000)
    """
    return (mix64(hashes) % np.uint64(num_buckets)).astype(np.int64)
