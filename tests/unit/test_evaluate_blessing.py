"""sluice.evaluate.decide: every threshold kind, no baseline, no thresholds, forced; reasons always present."""

from __future__ import annotations

import json

import pytest

from sluice.evaluate import Blessing, EvalResult, Threshold, decide


def result(**metrics) -> EvalResult:
    return EvalResult("binary", {"count": 1000, **metrics})


CANDIDATE = result(auc=0.781, log_loss=0.46, accuracy=0.75)
BASELINE = result(auc=0.774, log_loss=0.47, accuracy=0.76)


def test_no_thresholds_no_baseline_is_blessed_with_reasons():
    b = decide(CANDIDATE, None, {})
    assert b.blessed and not b.forced
    assert b.reasons == ["no baseline: first model, judged on thresholds only", "no thresholds set: blessed by default"]
    assert b.one_line() == ("BLESSED (no thresholds set: blessed by default; "
                            "no baseline: first model, judged on thresholds only)")
    assert decide(CANDIDATE, BASELINE, None).reasons == ["no thresholds set: blessed by default"]


def test_lower_bound():
    ok = decide(CANDIDATE, None, {"auc": Threshold(lower_bound=0.70)})
    assert ok.blessed and "auc 0.781 >= lower bound 0.7" in ok.reasons
    assert ok.one_line() == "BLESSED auc=0.781 (>= 0.7); no baseline"
    bad = decide(result(auc=0.69), None, {"auc": Threshold(lower_bound=0.70)})
    assert not bad.blessed
    assert bad.one_line() == "NOT BLESSED: auc 0.69 < lower bound 0.7"
    assert bad.reasons == ["no baseline: first model, judged on thresholds only", "auc 0.69 < lower bound 0.7"]


def test_upper_bound():
    assert decide(CANDIDATE, None, {"log_loss": Threshold(upper_bound=0.5)}).blessed
    bad = decide(CANDIDATE, None, {"log_loss": Threshold(upper_bound=0.4)})
    assert not bad.blessed and bad.one_line() == "NOT BLESSED: log_loss 0.46 > upper bound 0.4"


def test_max_decrease():
    thresholds = {"auc": Threshold(max_decrease=0.01)}
    ok = decide(CANDIDATE, BASELINE, thresholds)
    assert ok.blessed
    assert ok.one_line() == "BLESSED auc=0.781 (baseline 0.774, +0.007 >= -0.01)"
    assert "auc 0.781 vs baseline 0.774: +0.007 (better) >= -0.01 (max decrease 0.01)" in ok.reasons
    bad = decide(result(auc=0.76), BASELINE, thresholds)
    assert not bad.blessed
    assert bad.one_line() == "NOT BLESSED: auc 0.76 vs baseline 0.774: -0.014 (worse) < -0.01 (max decrease 0.01)"
    # A change of exactly the allowed size passes despite float rounding (0.764 - 0.774 != -0.01).
    assert decide(result(auc=0.764), BASELINE, thresholds).blessed


def test_max_increase():
    thresholds = {"log_loss": Threshold(max_increase=0.005)}
    assert decide(CANDIDATE, BASELINE, thresholds).blessed  # log loss fell
    bad = decide(result(log_loss=0.48), BASELINE, thresholds)
    assert not bad.blessed
    assert bad.failures[0].text == ("log_loss 0.48 vs baseline 0.47: +0.01 (worse) > +0.005 (max increase 0.005)")


def test_several_thresholds_one_line():
    b = decide(CANDIDATE, BASELINE, {"auc": Threshold(lower_bound=0.7, max_decrease=0.01),
                                      "log_loss": Threshold(upper_bound=0.5, max_increase=0.01)})
    assert b.blessed and len(b.checks) == 4 and all(c.passed for c in b.checks)
    assert b.one_line() == ("BLESSED auc=0.781 (>= 0.7; baseline 0.774, +0.007 >= -0.01); "
                            "log_loss=0.46 (<= 0.5; baseline 0.47, -0.01 <= +0.01)")
    mixed = decide(CANDIDATE, BASELINE, {"auc": Threshold(lower_bound=0.8), "accuracy": Threshold(max_decrease=0.0)})
    assert not mixed.blessed and len(mixed.failures) == 2
    assert mixed.one_line().startswith("NOT BLESSED: auc 0.781 < lower bound 0.8; accuracy 0.75 vs baseline 0.76")


def test_change_thresholds_without_baseline_are_not_checked():
    b = decide(CANDIDATE, None, {"auc": Threshold(max_decrease=0.01)})
    assert b.blessed and b.checks[0].passed is None
    assert b.reasons == ["no baseline: first model, judged on thresholds only",
                         "auc: max decrease 0.01 not checked (no baseline)"]
    assert b.one_line() == ("BLESSED (no baseline: first model, judged on thresholds only; "
                            "auc: max decrease 0.01 not checked (no baseline))")


def test_missing_or_undefined_metrics_fail():
    missing = decide(CANDIDATE, None, {"rmse": Threshold(upper_bound=1.0)})
    assert not missing.blessed and "rmse: not computed for the candidate" in missing.one_line()
    undefined = decide(result(auc=None), None, {"auc": Threshold(lower_bound=0.5)})
    assert not undefined.blessed and "undefined for the candidate" in undefined.reasons[-1]
    no_base = decide(CANDIDATE, result(), {"auc": Threshold(max_decrease=0.01)})
    assert not no_base.blessed and "baseline has no value" in no_base.reasons[-1]


def test_force():
    b = decide(result(auc=0.6), BASELINE, {"auc": Threshold(lower_bound=0.7)}, force=True)
    assert b.blessed and b.forced
    assert b.reasons[-1] == "forced: blessed by the user although checks failed"
    assert b.one_line() == "BLESSED (FORCED): auc 0.6 < lower bound 0.7"
    ok = decide(CANDIDATE, None, {}, force=True)
    assert ok.forced and ok.reasons[-1] == "forced: blessed by the user"


def test_threshold_validation_and_direction():
    with pytest.raises(ValueError, match="at least one"):
        Threshold()
    with pytest.raises(ValueError, match=">= 0"):
        Threshold(max_decrease=-0.1)
    assert Threshold.no_regression("auc", 0.01) == Threshold(max_decrease=0.01)
    assert Threshold.no_regression("rmse") == Threshold(max_increase=0.0)
    with pytest.raises(ValueError, match="unknown direction"):
        Threshold.no_regression("count")
    with pytest.raises(ValueError, match="regression baseline"):
        decide(CANDIDATE, EvalResult("regression", {"rmse": 1.0}), {})
    # Thresholds may come from config files as plain mappings.
    assert decide(CANDIDATE, None, {"auc": {"lower_bound": 0.7}}).blessed


def test_json_round_trip(tmp_path):
    b = decide(CANDIDATE, BASELINE, {"auc": Threshold(lower_bound=0.7, max_decrease=0.01)})
    path = b.save(tmp_path)
    raw = json.load(open(path))
    assert path.endswith("blessing.json") and raw["blessed"] is True and raw["reasons"] == b.reasons
    assert raw["thresholds"]["auc"] == {"lower_bound": 0.7, "upper_bound": None, "max_decrease": 0.01,
                                        "max_increase": None}
    loaded = Blessing.load(tmp_path)
    assert loaded == b and loaded.one_line() == b.one_line()
    first = decide(CANDIDATE, None, {})
    assert Blessing.from_dict(json.loads(json.dumps(first.to_dict()))) == first
    html = b._repr_html_()
    assert "<table" in html and "BLESSED" in html and "0.774" in html
