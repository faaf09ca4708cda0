"""One artifact: its record and files, and a view by type (statistics side by side with drift,
schema, anomalies, transform features and vocabularies, evaluation with the blessing, model).

Example: ``GET /artifacts/3?left=train&right=eval`` or ``GET /artifacts/3?against=12``.
"""

from __future__ import annotations

import json
import mimetypes
import os
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from sluice.metadata.records import Artifact
from sluice.render import anomalies_html, blessing_html, evaluation_html, schema_html, statistics_html
from sluice.render.html import Markup, bars_svg, esc, fmt, table
from sluice.ui.files import OutsideRoot, SafeFiles
from sluice.ui.pages.common import config, int_param, not_found, render
from sluice.ui.queries import run_artifacts, runs_of_artifact

MAX_FILE_BYTES = 2_000_000


def _artifact(request: Request, artifact_id: int) -> Artifact:
    try:
        return config(request).store.artifact(artifact_id)
    except KeyError:
        raise not_found(f"no artifact #{artifact_id}") from None


def _path(files: SafeFiles, art: Artifact, *parts: str) -> str:
    try:
        return files.resolve(art.uri, *parts)
    except OutsideRoot as exc:
        raise HTTPException(403, detail=str(exc)) from None


def artifact_page(request: Request) -> Response:
    """The artifact's record, files and type-specific view."""
    cfg = config(request)
    art = _artifact(request, request.path_params["artifact_id"])
    with cfg.store.engine.connect() as conn:
        run_ids = runs_of_artifact(conn, art.id)
    run_id = request.query_params.get("run") or (run_ids[0] if run_ids else None)
    producer = cfg.store.execution(art.producer_id) if art.producer_id is not None else None
    view, error = Markup(""), None
    try:
        view = VIEWS.get(art.type, lambda *a: Markup(""))(request, art, run_id)
    except OutsideRoot as exc:
        raise HTTPException(403, detail=str(exc)) from None
    except (OSError, ValueError, KeyError) as exc:  # files gone (gc) or unreadable: say so, keep the page
        error = f"cannot show the {art.type} files: {exc}"
    try:
        listing = cfg.files.listing(art.uri)
    except (OutsideRoot, OSError):
        listing = []
    props = {k: (v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in (art.properties or {}).items()}
    return render(request, "artifact.html", title=f"#{art.id} {art.type}", art=art, producer=producer,
                  run_ids=run_ids, run_id=run_id, view=view, error=error, listing=listing, props=props)


def artifact_file(request: Request) -> Response:
    """A file inside an artifact's folder; paths outside the artifact root are refused (403)."""
    cfg = config(request)
    art = _artifact(request, request.path_params["artifact_id"])
    base = _path(cfg.files, art)
    rel = request.path_params["path"]
    try:
        path = cfg.files.resolve(art.uri, rel)
    except OutsideRoot as exc:
        raise HTTPException(403, detail=str(exc)) from None
    if not (path == base or path.startswith(base + os.sep)):
        raise HTTPException(403, detail=f"{rel!r} is outside artifact #{art.id}")
    if not os.path.isfile(path):
        raise not_found(f"artifact #{art.id} has no file {rel!r}")
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise HTTPException(413, detail=f"{rel} is over {MAX_FILE_BYTES} bytes; read it from {path}")
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media.startswith("text/") or path.endswith((".json", ".yaml", ".yml", ".log", ".csv")):
        media = "text/plain; charset=utf-8"
    return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff",
                                                         "Content-Security-Policy": "sandbox"})


# -- views by type --------------------------------------------------------------------------------


def _run_artifact(request: Request, run_id: str | None, type: str) -> Artifact | None:
    if not run_id:
        return None
    with config(request).store.engine.connect() as conn:
        found = run_artifacts(conn, run_id, type)
    return found[-1] if found else None


def statistics_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    """Two datasets side by side (splits of this artifact, or a split of another one) with drift,
    plus the run's schema and anomalies per feature."""
    from sluice.stats.anomalies import Anomalies
    from sluice.stats.schema import Schema
    from sluice.stats.statistics import load_splits

    cfg = config(request)
    splits = load_splits(_path(cfg.files, art))
    names = list(splits)
    qp = request.query_params
    left = qp.get("left") or ("train" if "train" in splits else names[0])
    if left not in splits:
        raise not_found(f"artifact #{art.id} has no split {left!r}; splits: {', '.join(names)}")
    against = int_param(request, "against", 0)
    other_art = _artifact(request, against) if against else None
    if other_art is not None and other_art.type != "Statistics":
        raise HTTPException(400, detail=f"#{against} is a {other_art.type}, not Statistics")
    other_splits = load_splits(_path(cfg.files, other_art)) if other_art else splits
    default_right = left if other_art else next((n for n in other_splits if n != left), "")
    right = qp.get("right", default_right)
    if right and right not in other_splits:
        raise not_found(f"no split {right!r} to compare with; splits: {', '.join(other_splits)}")
    schema_art, anomalies_art = _run_artifact(request, run_id, "Schema"), _run_artifact(request, run_id, "Anomalies")
    schema = Schema.load(_path(cfg.files, schema_art)) if schema_art else None
    anomalies = Anomalies.load(_path(cfg.files, anomalies_art)) if anomalies_art else None
    right_label = (f"#{other_art.id} {right}" if other_art else right)
    body = statistics_html(splits[left], other_splits[right] if right else None, labels=(left, right_label),
                           schema=schema, anomalies=anomalies)
    previous = _previous_span(request, art)
    return Markup(_stats_controls(art, names, left, right, other_art, list(other_splits), previous) + body
                  + (f"<h3>Anomalies (artifact #{anomalies_art.id})</h3>" + anomalies_html(anomalies)
                     if anomalies is not None else ""))


def _previous_span(request: Request, art: Artifact) -> Artifact | None:
    span = (art.properties or {}).get("span")
    if span is None or art.producer_id is None:
        return None
    store = config(request).store
    ex = store.execution(art.producer_id)
    run = store.run(ex.run_id)
    return store.previous_span_artifact("Statistics", run.pipeline, ex.step, str(span))


def _stats_controls(art: Artifact, names: list[str], left: str, right: str, other: Artifact | None,
                    other_names: list[str], previous: Artifact | None) -> str:
    def opts(values: list[str], chosen: str, empty: bool = False) -> str:
        items = ([("", "(none)")] if empty else []) + [(v, v) for v in values]
        return "".join(f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(t)}</option>'
                       for v, t in items)

    links = []
    if previous is not None:
        links.append(f'<a href="/artifacts/{art.id}?against={previous.id}">compare with the previous span '
                     f'(#{previous.id}, span {esc((previous.properties or {}).get("span"))})</a>')
    hidden = f'<input type="hidden" name="against" value="{other.id}">' if other else ""
    return (f'<form class="sl-controls" method="get" action="/artifacts/{art.id}">'
            f'<label>left <select name="left">{opts(names, left)}</select></label> '
            f'<label>right{f" (#{other.id})" if other else ""} <select name="right">'
            f'{opts(other_names, right, empty=True)}</select></label>{hidden} '
            f'<button type="submit">show</button> {" ".join(links)}</form>')


def schema_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    from sluice.stats.schema import Schema

    return schema_html(Schema.load(_path(config(request).files, art)))


def anomalies_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    from sluice.stats.anomalies import Anomalies

    return anomalies_html(Anomalies.load(_path(config(request).files, art)))


def _expr_text(expr: dict[str, Any]) -> str:
    if expr.get("op") == "column":
        return str(expr.get("name"))
    args = [_expr_text(i) for i in expr.get("inputs", [])]
    args += [f"{k}={v}" for k, v in expr.items() if k not in ("op", "inputs", "analyzers", "name")]
    return f"{expr.get('op')}({', '.join(args)})"


def _analyzers(expr: dict[str, Any]) -> dict[str, str]:
    found = dict(expr.get("analyzers") or {})
    for i in expr.get("inputs", []):
        found.update(_analyzers(i))
    return found


def transform_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    """Features produced (kind, size, expression), vocabularies (size, top values) and bucket boundaries."""
    spec = config(request).files.read_json(_path(config(request).files, art), "transform.json")
    results = spec.get("analyzer_results", {})
    rows, vocab_rows, bucket_rows = [], [], []
    for f in spec.get("features", []):
        expr = f.get("expr", {})
        rows.append([Markup(f'<span class="sl-feature">{esc(f["name"])}</span>'), f.get("kind"),
                     f.get("cardinality"), _expr_text(expr)])
        for role, key in _analyzers(expr).items():
            value = results.get(key)
            if role == "vocabulary" and isinstance(value, dict):
                values, counts = value.get("values", []), value.get("counts", [])
                top = ", ".join(f"{v} ({c})" for v, c in list(zip(values, counts))[:5])
                vocab_rows.append([f["name"], len(values), value.get("num_distinct"), expr.get("num_oov_buckets"),
                                   bars_svg([str(v) for v in values[:8]], counts[:8], width=220), top])
            elif role == "boundaries" and isinstance(value, list):
                bucket_rows.append([f["name"], len(value) + 1, ", ".join(fmt(b, 3) for b in value)])
    inputs = spec.get("input_columns", {})
    out = table(["feature", "kind", "size", "expression"], rows,
                caption=f"{len(rows)} features from {len(inputs)} input columns", css="sl-transform-features")
    if vocab_rows:
        out = Markup(out + table(["feature", "vocabulary size", "distinct seen", "OOV buckets", "top values",
                                  "most frequent"], vocab_rows, caption="vocabularies", css="sl-vocabularies"))
    if bucket_rows:
        out = Markup(out + table(["feature", "buckets", "boundaries"], bucket_rows, caption="bucket boundaries",
                                 css="sl-buckets"))
    return out


def _blessing_of(request: Request, art: Artifact) -> Any:
    from sluice.evaluate.blessing import Blessing

    if art.producer_id is None:
        return None
    for out in config(request).store.outputs_of(art.producer_id).values():
        if out.type == "Blessing":
            return Blessing.load(_path(config(request).files, out))
    return None


def evaluation_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    """Metrics overall and per slice, beside the baseline's, and the blessing decision."""
    from sluice.evaluate.result import EvalResult

    files = config(request).files
    base = _path(files, art)
    candidate = EvalResult.load(files.resolve(base, "candidate"))
    baseline_dir = files.resolve(base, "baseline")
    baseline = EvalResult.load(baseline_dir) if os.path.isfile(os.path.join(baseline_dir, "evaluation.json")) else None
    return evaluation_html(candidate, baseline=baseline, blessing=_blessing_of(request, art))


def blessing_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    from sluice.evaluate.blessing import Blessing

    return blessing_html(Blessing.load(_path(config(request).files, art)))


def model_view(request: Request, art: Artifact, run_id: str | None) -> Markup:
    files = config(request).files
    path = _path(files, art)
    if not os.path.isfile(os.path.join(path, "model.json")):
        return Markup("")
    spec = files.read_json(path, "model.json")
    head = table(["", ""], [["model", spec.get("model")], ["task", spec.get("task")],
                            ["hyper-parameters", json.dumps(spec.get("hparams"), default=str)],
                            ["features", len(spec.get("features", []))]], caption="model", css="sl-model")
    feats = table(["feature", "kind", "cardinality"],
                  [[f.get("name"), f.get("kind"), f.get("cardinality")] for f in spec.get("features", [])],
                  caption="input features")
    return Markup(head + feats)


VIEWS = {"Statistics": statistics_view, "Schema": schema_view, "Anomalies": anomalies_view,
         "TransformGraph": transform_view, "ModelEvaluation": evaluation_view, "Blessing": blessing_view,
         "Model": model_view}
