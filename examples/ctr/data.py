"""Seeded, streaming generator of click-through (CTR) data with a known ground truth.

The data looks like the Criteo display-ads logs: ``user_id``, ``timestamp``, a 0/1
``label``, 13 heavy-tailed numeric columns ``I1..I13`` (with missing values) and 26
Zipf-distributed categorical columns ``C1..C26`` (vocabularies of 10 to 100,000 values).
Unlike real logs, every label is drawn from a known click probability, so a trained
model can be compared with the best AUC any model could reach (``bayes_optimal_auc``).

Ground truth (``z_k = log1p(I_k)``; a missing ``I_k`` counts as 0, i.e. ``z_k = 0``)::

    logit = b0                                   # calibrated so that mean p ~= BASE_RATE
          + sum_k w_k * (z_k - mu_k)             # linear in I1..I4
          + A * exp(-(z5 - mu5)^2 / (2 s^2))     # a narrow bump in I5 (not monotone)
          + B * [z6 > mu6 + sigma6 / 2]          # a step in I6
          + sum_f e_f[C_f]                       # per-value effects: C1-C8, C13, C18; only
                                                 # the 300 most frequent values, rest 0
          + sum_(f,g) s_fg * T[hash(C_f, C_g)]   # crosses C10xC14, C17xC21, C1xC20
          + g7[C25] * (z7 - mu7) + g8[C6] * (z8 - mu8)   # numeric x categorical slopes
    p = sigmoid(logit)

Effects come from ``seed``; rows come in fixed blocks of ``_BLOCK_ROWS`` drawn from
``(seed, block)``: the data depends on ``(rows, seed)``, never on ``chunk_rows`` or
``rows_per_file`` (``seed`` must be >= 0).

Example::

    >>> from examples.ctr import data
    >>> p = data.click_probability(next(data.generate(1000, seed=1)), seed=1)
    >>> paths = data.write("/tmp/ctr", rows=10_000, seed=1)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import time
import uuid
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

NUMERIC_COLUMNS: tuple[str, ...] = tuple(f"I{i}" for i in range(1, 14))
CATEGORICAL_COLUMNS: tuple[str, ...] = tuple(f"C{i}" for i in range(1, 27))

# Numeric I_k = floor(lognormal(mu, sigma)) ("lognormal") or floor(mu * lomax(sigma))
# ("pareto"): non-negative heavy-tailed counts. Last field: the rate of missing values.
NUMERIC_SPEC: tuple[tuple[str, float, float, float], ...] = (
    ("lognormal", 1.5, 1.0, 0.00), ("lognormal", 2.0, 1.2, 0.01), ("pareto", 3.0, 1.5, 0.20),
    ("lognormal", 1.0, 0.9, 0.05), ("lognormal", 2.5, 0.8, 0.02), ("lognormal", 3.0, 1.5, 0.10),
    ("lognormal", 1.8, 1.0, 0.15), ("lognormal", 2.2, 0.9, 0.03), ("pareto", 10.0, 1.2, 0.00),
    ("lognormal", 4.0, 2.0, 0.08), ("lognormal", 0.5, 1.0, 0.12), ("pareto", 1.0, 2.0, 0.18),
    ("lognormal", 5.0, 1.5, 0.04),
)  # I1..I13
# Vocabulary size of C1..C26: spread from 10 to 100,000, in no particular order.
VOCAB_SIZES: tuple[int, ...] = (
    10, 25_000, 300, 40, 100_000, 12, 1_500, 70, 5_000, 25, 600, 50_000, 150,
    18, 8_000, 2_500, 30, 1_000, 15_000, 400, 60, 75_000, 200, 3_500, 20, 800,
)
# Zipf exponent of each categorical (rank r has weight (r + 1) ** -s).
ZIPF_EXPONENTS: tuple[float, ...] = tuple(1.05 + 0.35 * ((7 * k) % 26) / 25 for k in range(26))
BASE_RATE = 0.2          # target mean click probability
N_USERS = 1_000_000      # user_id is Zipf(1.1) over this many users; it has no effect
T0 = 1_704_067_200       # 2024-01-01T00:00:00Z; timestamps grow over SPAN_S, no effect
SPAN_S = 14 * 86_400

# Ground-truth structure (0-based column indices). Effect sizes are tuned so that logistic
# regression on log1p numerics + one-hot categoricals falls ~0.04 AUC short at 1M rows.
_LINEAR = {0: 0.35, 1: -0.30, 2: 0.25, 3: 0.20}          # I_k -> weight on z_k
_BUMP = (4, 1.0, 0.35)                                    # I5: height, width (in z)
_STEP = (5, 0.8)                                          # I6: height, at z > mu + 0.5 sigma
_MAIN = {0: 0.5, 3: 0.5, 5: 0.4, 7: 0.4, 2: 0.35, 12: 0.35,
         6: 0.3, 17: 0.3, 1: 0.3, 4: 0.25}                # C_f -> std of its effects
_CROSSES = ((9, 13, 0.4), (16, 20, 0.35), (0, 19, 0.25))    # (C_f, C_g, std of pair effects)
_SLOPES = ((6, 24, 0.3), (7, 5, 0.25))                    # (I_k, C_f, std of slopes)
_HEAD = 300                  # values (by frequency) of a categorical with a main effect
_CROSS_TABLE_BITS = 16
_BLOCK_ROWS = 1 << 17

SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("timestamp", pa.int64()), ("label", pa.int64())]
    + [(c, pa.float64()) for c in NUMERIC_COLUMNS]
    + [(c, pa.string()) for c in CATEGORICAL_COLUMNS]
)


@functools.lru_cache(maxsize=None)
def _zipf_table(size: int, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """CDF of Zipf ranks and a guide table: ``guide[j]`` = the rank holding u = j / cells.

    Starting from the guide replaces a ~17-step binary search by a step or two.
    """
    w = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cells = 1 << (int(np.ceil(np.log2(size))) + 1)
    guide = np.searchsorted(cdf, np.arange(cells + 1) / cells, side="right")
    return cdf, guide.astype(np.int32)


def _zipf(rng: np.random.Generator, size: int, exponent: float, n: int) -> np.ndarray:
    """``n`` Zipf ranks in [0, size); exactly ``searchsorted(cdf, u, "right")`` per uniform u."""
    cdf, guide = _zipf_table(size, exponent)
    u = rng.random(n)
    r = guide[(u * (len(guide) - 1)).astype(np.intp)]
    todo = np.flatnonzero(cdf[r] <= u)   # cdf[size - 1] == 1.0 > u, so r stays < size
    for _ in range(8):
        if not todo.size:
            return r
        r[todo] += 1
        todo = todo[cdf[r[todo]] <= u[todo]]
    r[todo] = np.searchsorted(cdf, u[todo], side="right")   # very flat tail cells
    return r


@functools.lru_cache(maxsize=None)
def _vocabulary(f: int) -> tuple[np.ndarray, pa.Array]:
    """ids[rank] and the strings ``"c{f+1}_{id:06d}"`` by rank, for categorical ``f``.

    A fixed permutation decouples a value's id from its frequency (like hashed logs);
    it does not depend on the seed, so a value means the same thing in every data set.
    """
    ids = np.random.default_rng([7919, f]).permutation(VOCAB_SIZES[f])
    digits = pc.utf8_lpad(pa.array(ids).cast(pa.string()), width=6, padding="0")
    return ids, pc.binary_join_element_wise(f"c{f + 1}_", digits, "")


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-spread hash of uint64 keys (wraps on purpose)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclasses.dataclass(frozen=True)
class _Truth:
    intercept: float
    main: dict[int, np.ndarray]     # categorical -> effect per id
    cross_table: np.ndarray         # N(0, 1) effects looked up by hashed pair
    cross_salt: np.uint64
    slopes: dict[int, np.ndarray]   # numeric -> slope per id of its categorical


def _logit(t: _Truth, z: np.ndarray, ids: dict[int, np.ndarray]) -> np.ndarray:
    """Ground-truth logit from ``z = log1p(numerics)`` (n x 13, missing = 0) and ids."""
    out = np.full(z.shape[0], t.intercept)
    for k, w in _LINEAR.items():
        out += w * (z[:, k] - NUMERIC_SPEC[k][1])
    k, h, width = _BUMP
    out += h * np.exp(-((z[:, k] - NUMERIC_SPEC[k][1]) ** 2) / (2 * width**2))
    k, h = _STEP
    out += h * (z[:, k] > NUMERIC_SPEC[k][1] + 0.5 * NUMERIC_SPEC[k][2])
    for f, effects in t.main.items():
        out += effects[ids[f]]
    mask = np.uint64((1 << _CROSS_TABLE_BITS) - 1)
    for j, (f, g, std) in enumerate(_CROSSES):
        key = ids[f].astype(np.uint64) * np.uint64(VOCAB_SIZES[g]) + ids[g].astype(np.uint64)
        h = _mix64(key ^ (t.cross_salt + np.uint64(j << 40)))
        out += std * t.cross_table[(h & mask).astype(np.int64)]
    for k, f, _ in _SLOPES:
        out += t.slopes[k][ids[f]] * (z[:, k] - NUMERIC_SPEC[k][1])
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings for large |x|


def _draw_features(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Numerics (n x 13, NaN = missing) and Zipf ranks of the 26 categoricals."""
    x = np.empty((n, len(NUMERIC_SPEC)))
    for k, (kind, a, b, miss) in enumerate(NUMERIC_SPEC):
        raw = rng.lognormal(a, b, n) if kind == "lognormal" else a * rng.pareto(b, n)
        x[:, k] = np.floor(raw)
        x[rng.random(n) < miss, k] = np.nan
    ranks = [_zipf(rng, size, ZIPF_EXPONENTS[f], n) for f, size in enumerate(VOCAB_SIZES)]
    return x, ranks


def _z(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.nan_to_num(x, nan=0.0))  # missing -> 0 -> z = 0, by design


@functools.lru_cache(maxsize=8)
def _truth(seed: int) -> _Truth:
    rng = np.random.default_rng([seed, 0xC1C])
    main = {}
    for f, std in sorted(_MAIN.items()):
        main[f] = rng.normal(0.0, std, VOCAB_SIZES[f])
        # Only the _HEAD most frequent values carry an effect: rare values share 0, so the
        # gap to the Bayes AUC is learnable structure rather than unlearnable tail noise.
        main[f][_vocabulary(f)[0][_HEAD:]] = 0.0
    table = rng.normal(0.0, 1.0, 1 << _CROSS_TABLE_BITS)
    salt = np.uint64(rng.integers(0, 1 << 62))
    slopes = {k: rng.normal(0.0, std, VOCAB_SIZES[f]) for k, f, std in _SLOPES}
    t = _Truth(0.0, main, table, salt, slopes)
    # Calibrate the intercept on a private sample so that E[p] ~= BASE_RATE.
    x, ranks = _draw_features(np.random.default_rng([seed, 2, 0]), 65_536)
    base = _logit(t, _z(x), {f: _vocabulary(f)[0][r] for f, r in enumerate(ranks)})
    lo, hi = -20.0, 20.0
    for _ in range(50):  # bisection: mean p increases with the intercept
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _sigmoid(base + mid).mean() < BASE_RATE else (lo, mid)
    return dataclasses.replace(t, intercept=0.5 * (lo + hi))


def _blocks(rows: int, seed: int, stream: int) -> Iterator[dict[str, np.ndarray]]:
    """Numpy columns and true p of fixed-size blocks; block b is drawn from (seed, stream, b)."""
    truth = _truth(seed)
    for b, start in enumerate(range(0, rows, _BLOCK_ROWS)):
        n = min(_BLOCK_ROWS, rows - start)
        rng = np.random.default_rng([seed, stream, b])
        users = _zipf(rng, N_USERS, 1.1, n) + 1
        x, ranks = _draw_features(rng, n)
        p = _sigmoid(_logit(truth, _z(x), {f: _vocabulary(f)[0][r] for f, r in enumerate(ranks)}))
        label = (rng.random(n) < p).astype(np.int64)
        yield {"row": np.arange(start, start + n, dtype=np.int64), "user_id": users,
               "label": label, "x": x, "ranks": np.column_stack(ranks).astype(np.int32), "p": p}


def _to_batch(raw: dict[str, np.ndarray], rows: int) -> pa.RecordBatch:
    ts = T0 + (raw["row"] * SPAN_S) // max(rows, 1)  # rows in time order over SPAN_S
    x, ranks = raw["x"], raw["ranks"]
    cols = [pa.array(raw["user_id"], pa.int64()), pa.array(ts), pa.array(raw["label"])]
    cols += [pa.array(x[:, k], mask=np.isnan(x[:, k])) for k in range(x.shape[1])]
    # take() on the vocabulary builds the strings in C++: no per-row Python formatting.
    cols += [_vocabulary(f)[1].take(pa.array(ranks[:, f])) for f in range(ranks.shape[1])]
    return pa.RecordBatch.from_arrays(cols, schema=SCHEMA)


def generate(rows: int, seed: int = 0, *, chunk_rows: int = 500_000) -> Iterator[pa.RecordBatch]:
    """Stream ``rows`` rows as RecordBatches of ``chunk_rows`` rows (the last may be shorter).

    The schema is ``SCHEMA``. Memory stays bounded by about one block plus one chunk;
    the rows depend only on ``(rows, seed)``, never on ``chunk_rows`` (``timestamp``
    spreads the rows evenly, in order, over ``SPAN_S`` seconds).

    >>> [b.num_rows for b in generate(1_000, seed=3, chunk_rows=300)]
    [300, 300, 300, 100]
    """
    if rows < 0 or chunk_rows <= 0:
        raise ValueError("rows must be >= 0 and chunk_rows > 0")
    pieces: list[dict[str, np.ndarray]] = []
    have = 0
    for raw in _blocks(rows, seed, stream=0):
        # Re-chunk the numpy columns (cheap) and build strings once per output batch.
        pieces.append(raw)
        have += len(raw["row"])
        while have >= chunk_rows:
            joined = pieces[0] if len(pieces) == 1 else {
                k: np.concatenate([p[k] for p in pieces]) for k in raw}
            yield _to_batch({k: v[:chunk_rows] for k, v in joined.items()}, rows)
            pieces = [{k: v[chunk_rows:] for k, v in joined.items()}]
            have -= chunk_rows
    if have:
        yield _to_batch({k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}, rows)


def _ids_from_strings(col: pa.Array | pa.ChunkedArray, f: int) -> np.ndarray:
    """Parse ``"c{f+1}_000123"`` values back to ids (dictionary-encoded columns are fine)."""
    col = col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col
    ids = pc.utf8_slice_codeunits(col, len(f"c{f + 1}_")).cast(pa.int64())
    if ids.null_count:
        raise ValueError(f"{CATEGORICAL_COLUMNS[f]} has missing values; generated data has none")
    return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=np.int64)


def click_probability(batch: pa.Table | pa.RecordBatch, seed: int = 0) -> np.ndarray:
    """The true click probability of each row, recomputed from its raw features and ``seed``.

    Works on generated batches and on the files read back (Parquet or CSV, where the
    numerics may come back as int64 and the categoricals as dictionaries).

    >>> b = next(generate(100, seed=5))
    >>> click_probability(b, seed=5).shape
    (100,)
    """
    if not isinstance(batch, (pa.Table, pa.RecordBatch)):
        batch = pa.Table.from_pandas(batch, preserve_index=False)  # e.g. a pandas DataFrame
    x = np.empty((batch.num_rows, len(NUMERIC_COLUMNS)))
    for k, c in enumerate(NUMERIC_COLUMNS):  # nulls -> NaN; CSV may give int64
        x[:, k] = batch.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False)
    used = set(_MAIN) | {f for c in _CROSSES for f in c[:2]} | {f for _, f, _ in _SLOPES}
    ids = {f: _ids_from_strings(batch.column(CATEGORICAL_COLUMNS[f]), f) for f in sorted(used)}
    return _sigmoid(_logit(_truth(seed), _z(x), ids))


def expected_auc(p: np.ndarray, score: np.ndarray | None = None) -> float:
    """Expected AUC of ``score`` (default: ``p`` itself) when each label ~ Bernoulli(p_i).

    Exact ratio of expectations over all pairs i != j, in O(n log n)::

        sum_{i!=j} p_i (1-p_j) ([s_i > s_j] + 0.5 [s_i == s_j])
        / (sum p * sum (1-p) - sum p (1-p))

    >>> round(expected_auc(np.array([0.1, 0.9])), 3)
    0.988
    """
    p = np.asarray(p, dtype=np.float64)
    s = p if score is None else np.asarray(score, dtype=np.float64)
    order = np.argsort(s)
    s, p = s[order], p[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])    # groups of tied scores
    pos = np.add.reduceat(p, starts)
    neg = np.add.reduceat(1.0 - p, starts)
    self_pairs = np.add.reduceat(p * (1.0 - p), starts)
    neg_below = np.cumsum(neg) - neg
    num = np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg - self_pairs)
    den = p.sum() * (1.0 - p).sum() - np.sum(p * (1.0 - p))
    return float(num / den)


def bayes_optimal_auc(rows: int = 200_000, seed: int = 0) -> float:
    """The best AUC any model can expect on this distribution: ``expected_auc(p)``.

    Computed from the true p alone (no label noise) on a fresh sample of ``rows`` rows
    drawn from the same distribution as ``generate(..., seed)`` but not the same rows;
    its sampling error is about 0.001 at 200,000 rows.

    >>> 0.7 < bayes_optimal_auc(20_000, seed=0) < 0.9
    True
    """
    p = np.concatenate([raw["p"] for raw in _blocks(rows, seed, stream=1)] or [np.empty(0)])
    return expected_auc(p)


def write(out_dir: str, rows: int, seed: int = 0, *, fmt: str = "parquet",
          rows_per_file: int = 1_000_000) -> list[str]:
    """Write ``generate(rows, seed)`` to ``out_dir/part-00000.<fmt>``, ... and return the paths.

    Parquet files are zstd-compressed; CSV files have a header and empty fields for
    missing values. Each file is written under a temporary name and renamed when
    complete, so readers never see half a file. Stale ``part-NNNNN.<fmt>`` files of an
    earlier, larger run are removed: the directory always holds exactly one data set.
    ``rows=0`` writes one file with the schema and no rows.

    >>> write("/tmp/ctr_doc", rows=1_000, fmt="csv")
    ['/tmp/ctr_doc/part-00000.csv']
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    if rows < 0 or rows_per_file <= 0:
        raise ValueError("rows must be >= 0 and rows_per_file > 0")
    os.makedirs(out_dir, exist_ok=True)
    batches = generate(rows, seed, chunk_rows=min(500_000, rows_per_file))
    batch, paths = pa.RecordBatch.from_pylist([], schema=SCHEMA), []
    for i in range(max(1, -(-rows // rows_per_file))):
        path = os.path.join(out_dir, f"part-{i:05d}.{fmt}")
        tmp = os.path.join(out_dir, f".part-{i:05d}.{fmt}.{uuid.uuid4().hex}.tmp")
        want = min(rows_per_file, rows - i * rows_per_file)
        try:
            with (pq.ParquetWriter(tmp, SCHEMA, compression="zstd") if fmt == "parquet"
                  else pacsv.CSVWriter(tmp, SCHEMA)) as writer:
                while want > 0:
                    batch = batch if batch.num_rows else next(batches)
                    part = batch.slice(0, want)
                    writer.write_batch(part)
                    want -= part.num_rows
                    batch = batch.slice(part.num_rows)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):  # only after a failure
                os.remove(tmp)
        paths.append(path)
    pattern = re.compile(rf"part-(\d{{5}})\.{fmt}$")
    for name in os.listdir(out_dir):
        m = pattern.match(name)
        if m and int(m.group(1)) >= len(paths):
            os.remove(os.path.join(out_dir, name))
    return paths


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m examples.ctr.data --rows N --out DIR [--format csv] [--seed S]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    ap.add_argument("--rows-per-file", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    paths = write(args.out, args.rows, args.seed, fmt=args.format, rows_per_file=args.rows_per_file)
    print(f"wrote {args.rows} rows to {len(paths)} file(s) in {time.perf_counter() - t0:.1f}s")
    print(f"bayes_optimal_auc={bayes_optimal_auc(seed=args.seed):.4f}")


if __name__ == "__main__":
    main()
