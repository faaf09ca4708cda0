"""The preprocessing every peer implements, in one place.

Sluice's form (the CTR example's numeric and categorical features, as in
tests/integration/test_out_of_core.py): for I1..I13 ``zscore(log1p(clip(fill_missing(x, 0), 0)))``,
for C1..C26 a vocabulary (top 20,000 values, one OOV bucket), the label passed through.
The peers write the same thing in their own idiom (see each module).
"""

from __future__ import annotations

NUMERIC = [f"I{i}" for i in range(1, 14)]
# Statistics cover every column of the data, as Sluice, pandas' describe and TFDV do.
STATS_NUMERIC = ["user_id", "timestamp", "label"] + NUMERIC
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
TOP_K = 20_000
DECILES = [i / 10 for i in range(1, 10)]


def preprocessing_fn(x):
    import sluice.transform as st

    out = {c: st.zscore(st.log1p(st.clip(st.fill_missing(x[c], 0), 0, None))) for c in NUMERIC}
    out.update({c: st.vocabulary(x[c], top_k=TOP_K, num_oov_buckets=1) for c in CATEGORICAL})
    out["label"] = st.passthrough(x["label"])
    return out
