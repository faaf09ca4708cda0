"""HTML for evaluation results (overall, per slice, against a baseline) and blessing decisions.

Example::

    evaluation_html(EvalResult.load("candidate"), baseline=EvalResult.load("baseline"), blessing=blessing)
"""

from __future__ import annotations

from typing import Any

from sluice.render.html import Markup, badge, esc, fmt, table

HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "log_loss": False, "rmse": False, "mae": False}


def _delta(metric: str, cand: Any, base: Any) -> Markup | str:
    if not isinstance(cand, (int, float)) or not isinstance(base, (int, float)) or isinstance(cand, bool):
        return "-"
    change = cand - base
    better = HIGHER_IS_BETTER.get(metric)
    kind = "info" if better is None or change == 0 else ("ok" if (change > 0) == better else "bad")
    return Markup(f'<span class="sl-delta sl-{kind}">{"+" if change >= 0 else ""}{esc(fmt(change))}</span>')


def evaluation_html(result: Any, baseline: Any | None = None, blessing: Any | None = None) -> Markup:
    """Metrics overall (beside the baseline's, with the change), per slice, the calibration table,
    and the blessing decision with its reasons.

    Example::

        evaluation_html(candidate, baseline=baseline, blessing=Blessing.load("blessing"))
    """
    parts: list[str] = []
    if blessing is not None:
        parts.append(blessing_html(blessing))
    names = list(result.metrics)
    if baseline is not None:
        rows = [[n, result.metrics.get(n), baseline.metrics.get(n), _delta(n, result.metrics.get(n),
                                                                            baseline.metrics.get(n))] for n in names]
        parts.append(table(["metric", "candidate", "baseline", "change"], rows, caption="overall vs baseline",
                           css="sl-eval-overall"))
    else:
        parts.append(table(["metric", "value"], [[n, result.metrics.get(n)] for n in names],
                           caption=f"{result.task} evaluation: overall", css="sl-eval-overall"))
    if result.slices:
        rows = [[s.feature, s.value] + [s.metrics.get(n) for n in names] for s in result.slices]
        left_out = ", ".join(f"{k}: {v} more values" for k, v in result.slices_left_out.items())
        parts.append(table(["slice", "value"] + names, rows, caption="per slice" + (f" ({left_out})" if left_out else ""),
                           css="sl-eval-slices"))
    if result.calibration:
        parts.append(table(["bucket", "count", "mean prediction", "mean label"],
                           [[f"[{b.lower:.1f}, {b.upper:.1f})", b.count, b.mean_prediction, b.mean_label]
                            for b in result.calibration], caption="calibration", css="sl-eval-calibration"))
    return Markup("".join(parts))


def blessing_html(blessing: Any) -> Markup:
    """The release decision: blessed or not, forced or not, every reason and every check.

    Example::

        blessing_html(decide(candidate, baseline, thresholds))
    """
    verdict = "BLESSED" if blessing.blessed else "NOT BLESSED"
    head = (f'<div class="sl-blessing {"sl-blessed" if blessing.blessed else "sl-not-blessed"}">'
            f'{badge(verdict, "ok" if blessing.blessed else "bad")}'
            f'{" " + badge("forced", "warn") if blessing.forced else ""}'
            f'<ul class="sl-reasons">{"".join(f"<li>{esc(r)}</li>" for r in blessing.reasons)}</ul></div>')
    checks = getattr(blessing, "checks", None) or []
    if not checks:
        return Markup(head)
    rows = [[badge({True: "pass", False: "fail"}.get(c.passed, "n/a"), {True: "ok", False: "bad"}.get(c.passed, "info")), c.metric, c.kind, c.value,
             c.baseline, c.bound, c.text] for c in checks]
    return Markup(head + table(["", "metric", "check", "value", "baseline", "bound", "why"], rows, caption="checks",
                               css="sl-checks"))
