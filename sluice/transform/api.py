"""The functions a preprocessing function calls: mappers and analyzer-backed mappers.

Each returns a symbolic :class:`~sluice.transform.nodes.Feature`; nothing is
computed until :func:`sluice.transform.fit` runs the analyzers and
``TransformGraph.apply`` maps batches. Numeric outputs become float32 columns,
categorical ones int64 ids in ``[0, cardinality)``.

Example::

    import sluice.transform as st

    def preprocessing_fn(x: st.Inputs) -> dict[str, st.Feature]:
        return {
            "age": st.zscore(st.fill_missing(x["age"])),
            "country": st.vocabulary(x["country"], top_k=1000),
            "user": st.hash_bucket(x["user_id"], 1000),
        }
"""

from __future__ import annotations

from collections.abc import Sequence

import sluice.transform.categorical  # noqa: F401  (registers the categorical ops)
import sluice.transform.mappers  # noqa: F401  (registers the numeric ops)
from sluice.transform.nodes import Feature


def passthrough(x: Feature) -> Feature:
    """Carry a column: numbers become a float32 feature, strings and others are kept as-is
    (for ids or keys to join on; they are outputs but not model features).

    Example::

        st.passthrough(x["label"])      # float32 label
    """
    return Feature.make("passthrough", [x])


def fill_missing(x: Feature, value: float | int | str | None = None) -> Feature:
    """Replace missing values (null, NaN) by ``value``, or by the column mean (an analyzer) when omitted.

    Strings need an explicit ``value``.

    Example::

        st.fill_missing(x["age"])                 # mean
        st.fill_missing(x["city"], value="none")
    """
    return Feature.make("fill_missing", [x], value=value)


def log1p(x: Feature) -> Feature:
    """``ln(1 + x)``; values <= -1 become missing.

    Example::

        st.log1p(x["fare"])
    """
    return Feature.make("log1p", [x])


def clip(x: Feature, lo: float | None = None, hi: float | None = None) -> Feature:
    """Limit values to ``[lo, hi]``; either bound may be omitted.

    Example::

        st.clip(x["fare"], 0, 500)
    """
    return Feature.make("clip", [x], lo=lo, hi=hi)


def zscore(x: Feature) -> Feature:
    """``(x - mean) / std`` with the fitted mean and *population* std (ddof=0).

    A missing value yields 0.0 (the mean) unless ``x`` is filled first; a
    constant column (std 0) yields ``x - mean``.

    Example::

        st.zscore(st.fill_missing(x["age"]))
    """
    return Feature.make("zscore", [x])


def scale_to_0_1(x: Feature) -> Feature:
    """``(x - min) / (max - min)`` with the fitted min and max; a constant column yields 0.5.

    Unseen values beyond the fitted range fall outside [0, 1]; clip first if that matters.

    Example::

        st.scale_to_0_1(st.clip(st.log1p(x["fare"]), 0, 10))
    """
    return Feature.make("scale_to_0_1", [x])


def bucketize(x: Feature, num_buckets: int | None = None, *,
              boundaries: Sequence[float] | None = None) -> Feature:
    """Categorical bucket ids: fitted quantile boundaries (``num_buckets``) or fixed ``boundaries``.

    Bucket ``i`` holds ``boundaries[i-1] <= x < boundaries[i]``; missing
    values go to bucket 0. Cardinality is ``len(boundaries) + 1``.

    Example::

        st.bucketize(x["age"], num_buckets=10)
        st.bucketize(x["age"], boundaries=[18, 30, 65])   # 4 ids
    """
    return Feature.make("bucketize", [x], num_buckets=num_buckets,
                        boundaries=None if boundaries is None else list(boundaries))


def vocabulary(x: Feature, top_k: int | None = None, num_oov_buckets: int = 1, *,
               frequency_threshold: int | None = None) -> Feature:
    """Categorical ids from the fitted vocabulary (most frequent first, ties by value).

    Ids ``0 .. len(vocab)-1`` are the kept values (at most ``top_k``, each seen
    at least ``frequency_threshold`` times); unseen and missing values map to
    ``num_oov_buckets`` extra ids after them (one bucket, or a stable hash over
    several). ``num_oov_buckets=0`` suits labels: an unseen value is an error,
    and ``graph.vocabulary(name)`` maps ids back to values.

    Example::

        st.vocabulary(x["country"], top_k=1000, num_oov_buckets=1)
        st.vocabulary(x["species"], num_oov_buckets=0)
    """
    return Feature.make("vocabulary", [x], top_k=top_k, num_oov_buckets=num_oov_buckets,
                        frequency_threshold=frequency_threshold)


def hash_bucket(x: Feature, num_buckets: int) -> Feature:
    """Categorical ids from a stable hash (FNV-1a 64 of the value's text, mixed), never Python's ``hash()``.

    Missing values hash like the empty string.

    Example::

        st.hash_bucket(x["user_id"], 1000)
    """
    return Feature.make("hash_bucket", [x], num_buckets=num_buckets)


def feature_cross(xs: Sequence[Feature], hash_buckets: int) -> Feature:
    """Categorical ids for the combination of several columns' values, hashed into ``hash_buckets``.

    Inputs may be raw columns or categorical ids (e.g. bucketized ages); order matters.

    Example::

        st.feature_cross([x["country"], st.bucketize(x["age"], boundaries=[30, 60])], hash_buckets=10000)
    """
    return Feature.make("feature_cross", list(xs), hash_buckets=hash_buckets)
