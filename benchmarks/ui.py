"""Web UI page times on a large store: 10,000 runs and 100,000 artifacts.

    .venv/bin/python benchmarks/ui.py                     # seed a fresh store in a temp dir, time every page
    .venv/bin/python benchmarks/ui.py --runs 20000 --repeat 11 --keep /tmp/ui-bench

Seeding is a bulk insert through SQLAlchemy Core (executemany in one transaction per table):
``--runs`` runs over 5 pipelines, 10 steps each (the CTR example's shape: 9 succeeded or cached
steps and a Pusher), 10 artifacts per run (the last run's artifacts form a full lineage chain),
input/output events, 3 metric series of 10 points per run, a model version for every 10th run
with aliases. Artifacts of the types that have a view point at one small real artifact folder per
type (statistics of 2 splits x 40 features, schema, anomalies, transform graph, evaluation with 20
slices, blessing), so page times include reading and rendering those files.

Each page is requested over real HTTP (uvicorn on 127.0.0.1 in a thread, httpx client) once to
warm up, then ``--repeat`` times; the table shows the median and the maximum in milliseconds and
whether the median is under the 300 ms budget. Exit status 1 when a median is over budget.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BUDGET_MS = 300.0
STEPS = ["ctr_data_generator", "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
         "Trainer", "Evaluator", "Pusher", "BulkInferrer"]
# (step index, output type, output key); inputs: the previous step's output (a chain, like the example)
OUTPUTS = [(0, "RawData", "data"), (1, "Examples", "examples"), (2, "Statistics", "statistics"),
           (3, "Schema", "schema"), (4, "Anomalies", "anomalies"), (5, "TransformGraph", "transform_graph"),
           (6, "Model", "model"), (7, "ModelEvaluation", "evaluation"), (7, "Blessing", "blessing"),
           (8, "PushedModel", "pushed_model")]


def write_real_artifacts(root: str) -> dict[str, str]:
    """One small, real artifact folder per viewable type; returns type -> folder."""
    from sluice.evaluate import Blessing, CalibrationBucket, Check, EvalResult, SliceMetrics
    from sluice.stats import (
        Anomalies, Anomaly, DatasetStatistics, FeatureStatistics, Histogram, NumericStatistics, StringStatistics,
        ValueCount, infer_schema,
    )

    rng = random.Random(0)
    paths = {t: os.path.join(root, "real", t) for t in ("Statistics", "Schema", "Anomalies", "TransformGraph",
                                                        "ModelEvaluation", "Blessing")}
    splits = {}
    for split, rows in (("train", 80_000), ("eval", 20_000)):
        feats = {}
        for i in range(20):
            counts = [rng.randint(100, 5000) for _ in range(10)]
            n = NumericStatistics(mean=rng.random(), std=1.0, min=0.0, max=10.0, zeros=3,
                                  quantiles=[(q / 10, q) for q in range(11)],
                                  histogram=Histogram([float(b) for b in range(11)], counts))
            feats[f"I{i}"] = FeatureStatistics(f"I{i}", "float", rows, 0, numeric=n)
        for i in range(20):
            values = [ValueCount(f"v{j}", rng.randint(10, 1000)) for j in range(10)]
            s = StringStatistics(50, values, values, 2, 3.0, 4, 0)
            feats[f"C{i}"] = FeatureStatistics(f"C{i}", "string", rows, 0, string=s)
        splits[split] = DatasetStatistics(rows, feats, split)
        splits[split].save(os.path.join(paths["Statistics"], split))
    infer_schema(splits["train"]).save(paths["Schema"])
    Anomalies([Anomaly("out_of_range", "warning", f"I{i}", "eval", "values in [0, 10]", "values in [0, 12]")
               for i in range(5)]).save(paths["Anomalies"])
    import json

    features = [{"name": f"C{i}", "kind": "categorical", "cardinality": 51,
                 "expr": {"op": "vocabulary", "inputs": [{"op": "column", "name": f"C{i}"}], "top_k": 1000,
                          "num_oov_buckets": 1, "analyzers": {"vocabulary": f"vocabulary(C{i})"}}} for i in range(20)]
    features += [{"name": f"I{i}_q", "kind": "categorical", "cardinality": 17,
                  "expr": {"op": "bucketize", "inputs": [{"op": "column", "name": f"I{i}"}], "num_buckets": 16,
                           "analyzers": {"boundaries": f"quantiles(I{i})"}}} for i in range(20)]
    results = {f"vocabulary(C{i})": {"values": [f"v{j}" for j in range(50)], "counts": list(range(1000, 950, -1)),
                                     "num_distinct": 50} for i in range(20)}
    results.update({f"quantiles(I{i})": [j / 2 for j in range(15)] for i in range(20)})
    os.makedirs(paths["TransformGraph"], exist_ok=True)
    with open(os.path.join(paths["TransformGraph"], "transform.json"), "w") as f:
        json.dump({"format": "sluice.transform", "version": 1, "input_columns": {}, "features": features,
                   "analyzer_results": results}, f)
    metrics = {"count": 20_000, "auc": 0.8, "log_loss": 0.45, "accuracy": 0.8}
    cand = EvalResult("binary", metrics, slices=[SliceMetrics("C1", f"v{j}", metrics) for j in range(20)],
                      calibration=[CalibrationBucket(j / 10, (j + 1) / 10, 100, j / 10, j / 10) for j in range(10)])
    cand.save(os.path.join(paths["ModelEvaluation"], "candidate"))
    cand.save(os.path.join(paths["ModelEvaluation"], "baseline"))
    Blessing(True, ["auc 0.8 >= 0.7"], checks=[Check("auc", "lower_bound", True, 0.8, None, 0.7, "auc 0.8 >= 0.7")],
             candidate_metrics=metrics).save(paths["Blessing"])
    return paths


def seed(url: str, artifact_root: str, runs: int) -> dict[str, object]:
    """Bulk-insert ``runs`` runs; returns ids worth timing."""
    import sqlalchemy as sa

    from sluice.metadata import MetadataStore
    from sluice.metadata.schema import (
        alias_history, artifacts, events, executions, metrics, model_aliases, model_versions, pipelines,
    )
    from sluice.metadata.schema import runs as runs_table

    real = write_real_artifacts(artifact_root)
    store = MetadataStore.open(url)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(1)
    with store.engine.begin() as conn:
        conn.execute(pipelines.insert(), [{"id": i + 1, "name": f"pipeline_{i}", "created_at": t0} for i in range(5)])
        run_rows, ex_rows, art_rows, ev_rows, m_rows, mv_rows = [], [], [], [], [], []
        ex_id = art_id = ev_id = m_id = 0
        for r in range(runs):
            rid = f"{r:08x}" + "0" * 24
            start = t0 + timedelta(minutes=10 * r)
            status = "failed" if r % 50 == 7 else "succeeded"
            run_rows.append({"id": rid, "pipeline_id": r % 5 + 1, "status": status, "started_at": start,
                             "ended_at": start + timedelta(seconds=60 + r % 30), "params": {"epochs": r % 4 + 1,
                                                                                             "rows": 100_000},
                             "engine": "local", "user": f"user{r % 7}", "host": "bench", "pid": 1})
            exec_ids = []
            for s, step in enumerate(STEPS):
                ex_id += 1
                exec_ids.append(ex_id)
                cached = r % 2 == 1 and s < 6
                ex_rows.append({"id": ex_id, "run_id": rid, "step": step, "component": step,
                                "status": "cached" if cached else "succeeded", "started_at": start + timedelta(seconds=s),
                                "ended_at": start + timedelta(seconds=s + 1), "fingerprint": f"fp{ex_id}",
                                "parameters": {"epochs": r % 4 + 1, "lr": 0.01}, "log_path": None, "attempts": 1})
            prev_art = None
            for s, type_, key in OUTPUTS:
                art_id += 1
                art_rows.append({"id": art_id, "type": type_, "name": key,
                                 "uri": real.get(type_, os.path.join(artifact_root, type_, str(art_id))),
                                 "properties": {"summary": f"{type_} of run {r}", "blessed": True}, "fingerprint": "x",
                                 "state": "live", "created_at": start, "producer_id": exec_ids[s]})
                ev_id += 1
                ev_rows.append({"id": ev_id, "execution_id": exec_ids[s], "artifact_id": art_id, "kind": "output",
                                "key": key})
                if prev_art is not None:
                    ev_id += 1
                    ev_rows.append({"id": ev_id, "execution_id": exec_ids[s], "artifact_id": prev_art,
                                    "kind": "input", "key": "in"})
                prev_art = art_id
            for name in ("train_loss", "eval_loss", "eval_auc"):
                for step in range(10):
                    m_id += 1
                    m_rows.append({"id": m_id, "run_id": rid, "execution_id": exec_ids[6], "name": name, "step": step,
                                   "value": rng.random(), "recorded_at": start})
            if r % 10 == 0:
                mv_rows.append({"name": f"model_{r // 10 % 5}", "version": r // 50 + 1, "artifact_id": art_id,
                                "source_model_id": art_id - 3, "run_id": rid, "uri": f"/serving/model_{r // 10 % 5}/{r // 50 + 1}",
                                "created_at": start})
        for table, rows in ((runs_table, run_rows), (executions, ex_rows), (artifacts, art_rows), (events, ev_rows),
                            (metrics, m_rows), (model_versions, mv_rows)):
            for i in range(0, len(rows), 20_000):
                conn.execute(table.insert(), rows[i:i + 20_000])
        for m in range(5):
            latest = max(v["version"] for v in mv_rows if v["name"] == f"model_{m}")
            conn.execute(model_aliases.insert(), [{"name": f"model_{m}", "alias": "production", "version": latest}])
            conn.execute(alias_history.insert(), [{"name": f"model_{m}", "alias": "production", "version": latest,
                                                   "action": "set", "at": t0, "note": "bench"}])
        counts = {t.name: conn.scalar(sa.select(sa.func.count()).select_from(t))
                  for t in (runs_table, executions, artifacts, events, metrics, model_versions)}
    store.close()
    last = f"{runs - 1:08x}" + "0" * 24
    base = (runs - 1) * len(OUTPUTS)
    return {"counts": counts, "last_run": last, "runs": [f"{r:08x}" + "0" * 24 for r in range(runs - 5, runs)],
            "artifact": {t: base + i + 1 for i, (_, t, _) in enumerate(OUTPUTS)}}


def pages(info: dict) -> list[tuple[str, str]]:
    a, last, five = info["artifact"], info["last_run"], info["runs"]
    sel = "&".join(f"run={r}" for r in five)
    return [
        ("runs, newest 50", "/"),
        ("runs, filtered (pipeline + status)", "/?pipeline=pipeline_3&status=failed"),
        ("runs, last page", f"/?offset={info['counts']['runs'] - 50}"),
        ("run: DAG, steps, outputs", f"/runs/{last}"),
        ("training curves, 1 run", f"/training?run={last}"),
        ("training curves, 5 runs", f"/training?{sel}"),
        ("compare, 5 runs", f"/compare?{sel}"),
        ("statistics: train vs eval + schema, anomalies", f"/artifacts/{a['Statistics']}?run={last}"),
        ("transform: features, vocabularies, buckets", f"/artifacts/{a['TransformGraph']}"),
        ("evaluation vs baseline + blessing", f"/artifacts/{a['ModelEvaluation']}"),
        ("schema", f"/artifacts/{a['Schema']}"),
        ("anomalies", f"/artifacts/{a['Anomalies']}"),
        ("model artifact (record, no files)", f"/artifacts/{a['Model']}"),
        ("lineage of a pushed model (both ways)", f"/lineage/{a['PushedModel']}"),
        ("lineage of raw data (down)", f"/lineage/{a['RawData']}?direction=down"),
        ("models: versions, aliases", "/models"),
    ]


def serve(app: object) -> tuple[str, object, threading.Thread]:
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", default=None, help="seed into this folder and keep it (reused if seeded)")
    args = parser.parse_args()
    import httpx

    from sluice.ui.app import create_app

    work = args.keep or tempfile.mkdtemp(prefix="sluice-ui-bench-")
    os.makedirs(work, exist_ok=True)
    db, root = os.path.join(work, "metadata.db"), os.path.join(work, "artifacts")
    t = time.perf_counter()
    if os.path.exists(db) and args.keep:
        raise SystemExit(f"{db} exists; remove it or choose another --keep folder")
    info = seed(db, root, args.runs)
    print(f"seeded in {time.perf_counter() - t:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in info["counts"].items()))
    url, server, thread = serve(create_app(db, artifact_root=root))
    failures = 0
    print(f"\n| page | median ms | max ms | < {BUDGET_MS:.0f} ms |\n| --- | ---: | ---: | :---: |")
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, path in pages(info):
            first = client.get(path)
            assert first.status_code == 200, (path, first.status_code, first.text[:500])
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            med = statistics.median(times)
            failures += med >= BUDGET_MS
            print(f"| {name} | {med:.1f} | {max(times):.1f} | {'yes' if med < BUDGET_MS else 'NO'} |", flush=True)
    server.should_exit = True
    thread.join(timeout=10)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
