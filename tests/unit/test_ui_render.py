"""sluice.render: the HTML shared by notebooks (_repr_html_) and the web UI; drift marking, escaping."""

from __future__ import annotations

import re

import pytest

from sluice.evaluate import Blessing, Check, EvalResult, SliceMetrics
from sluice.render import anomalies_html, blessing_html, evaluation_html, histogram_svg, schema_html, statistics_html
from sluice.render.stats import feature_distances
from sluice.stats import (
    Anomalies, Anomaly, DatasetStatistics, FeatureSchema, FeatureStatistics, Histogram, NumericStatistics, Schema,
    StringStatistics, ValueCount,
)


def numbers(name: str, counts: list[int]) -> FeatureStatistics:
    bounds = [float(i) for i in range(len(counts) + 1)]
    n = NumericStatistics(mean=1.5, std=0.5, min=0.0, max=float(len(counts)), zeros=0,
                          quantiles=[(0.5, 1.25)], histogram=Histogram(bounds, counts))
    return FeatureStatistics(name, "float", sum(counts), 0, numeric=n)


def strings(name: str, counts: dict[str, int]) -> FeatureStatistics:
    values = [ValueCount(v, c) for v, c in counts.items()]
    s = StringStatistics(len(counts), values, values, 1, 1.0, 3, 0)
    return FeatureStatistics(name, "string", sum(counts.values()), 0, string=s)


def ds(split: str, *features: FeatureStatistics) -> DatasetStatistics:
    return DatasetStatistics(100, {f.name: f for f in features}, split)


TRAIN = ds("train", numbers("age", [50, 50]), strings("city", {"<Paris>": 50, "Lyon": 50}), numbers("same", [10, 10]))
EVAL = ds("eval", numbers("age", [90, 10]), strings("city", {"<Paris>": 20, "Lyon": 80}), numbers("same", [5, 5]))


def rows(html: str) -> list[str]:
    return re.findall(r"<tr[^>]*>.*?</tr>", html, flags=re.S)


def test_side_by_side_marks_exactly_the_features_over_the_threshold():
    dist = feature_distances(TRAIN, EVAL)
    assert dist["city"].value == pytest.approx(0.3) and dist["same"].value == pytest.approx(0.0)
    assert 0.0 < dist["age"].value < 1.0
    html = statistics_html(TRAIN, EVAL, labels=("train", "eval"), highlight=dist["age"].value + 0.01)
    drifted = [r for r in rows(html) if 'class="sl-drift"' in r]
    assert len(drifted) == 1 and 'style="background:#fff1e5"' in drifted[0] and ">city<" in drifted[0] and "0.3 L∞" in drifted[0]
    assert "Lyon: 0.5 → 0.8" in drifted[0]
    assert "1 feature(s) drifted" in html
    # The schema's own threshold wins over the default one.
    sch = Schema({"age": FeatureSchema("age", "float", drift_threshold=0.0001), "city": FeatureSchema("city", "string",
                                                                                                         drift_threshold=0.5)})
    html = statistics_html(TRAIN, EVAL, schema=sch, highlight=0.01)
    drifted = [r for r in rows(html) if 'class="sl-drift"' in r]
    assert [">age<" in r for r in drifted] == [True] and "drift ≤ 0.5" in html


def test_statistics_escape_values_and_draw_histograms():
    html = statistics_html(TRAIN)
    assert "&lt;Paris&gt;" in html and "<Paris>" not in html
    assert html.count('<svg class="sl-hist"') == 2 and html.count('<svg class="sl-bars"') == 1
    assert "100 rows, 3 features" in html
    svg = histogram_svg([0.0, 1.0, 2.0], [10, 5])
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" fill', svg)]
    assert heights[0] == pytest.approx(38.0) and heights[1] == pytest.approx(19.0)


def test_repr_html_of_library_objects_is_the_ui_rendering():
    assert TRAIN._repr_html_() == statistics_html(TRAIN)
    sch = Schema({"age": FeatureSchema("age", "int", min=18, max=77)})
    assert sch._repr_html_() == schema_html(sch) and "[18, 77]" in schema_html(sch)
    an = Anomalies([Anomaly("missing_values", "error", "age", "eval", "no missing values", "3 missing")])
    assert an._repr_html_() == anomalies_html(an) and "sl-error" in anomalies_html(an)
    assert "No anomalies." in Anomalies([])._repr_html_()


def test_evaluation_against_baseline_marks_better_and_worse_and_the_blessing():
    cand = EvalResult("binary", {"auc": 0.80, "log_loss": 0.50}, slices=[SliceMetrics("country", "FR", {"auc": 0.7})])
    base = EvalResult("binary", {"auc": 0.75, "log_loss": 0.45})
    bless = Blessing(False, ["log_loss rose"], checks=[
        Check("auc", "lower_bound", True, 0.8, None, 0.7, "auc 0.8 >= 0.7"),
        Check("log_loss", "max_increase", False, 0.5, 0.45, 0.01, "log_loss +0.05 > 0.01"),
        Check("auc", "max_decrease", None, 0.8, None, 0.01, "not checked")])
    html = evaluation_html(cand, baseline=base, blessing=bless)
    assert '<span class="sl-delta sl-ok">+0.05</span>' in html       # auc up: better
    assert '<span class="sl-delta sl-bad">+0.05</span>' in html      # log_loss up: worse
    assert "NOT BLESSED" in html and "log_loss rose" in html and ">FR<" in html
    assert blessing_html(bless).count(">fail<") == 1 and blessing_html(bless).count(">n/a<") == 1
    assert cand._repr_html_() == evaluation_html(cand) and bless._repr_html_() == blessing_html(bless)
