"""Model evaluation and the release gate (the TFMA equivalent).

Example::

    from sluice.engine import get_engine
    from sluice.evaluate import Threshold, compute_metrics, decide

    engine = get_engine("local")
    preds = engine.read_parquet(["predictions.parquet"])
    candidate = compute_metrics(engine, preds, "binary", slices=["country"])
    blessing = decide(candidate, baseline=None, thresholds={"auc": Threshold(lower_bound=0.7)})
    print(blessing.one_line())
"""

from sluice.evaluate.blessing import HIGHER_IS_BETTER, Blessing, Check, Threshold, decide
from sluice.evaluate.metrics import compute_metrics
from sluice.evaluate.result import CalibrationBucket, EvalResult, SliceMetrics

__all__ = [
    "HIGHER_IS_BETTER", "Blessing", "CalibrationBucket", "Check", "EvalResult", "SliceMetrics", "Threshold",
    "compute_metrics", "decide",
]
