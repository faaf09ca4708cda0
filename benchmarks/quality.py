"""Model quality at full scale: CTR AUC vs the generator's Bayes-optimal AUC, penguins accuracy.

    .venv/bin/python benchmarks/quality.py                    # CTR at 1M rows (as `make demo`) + penguins
    .venv/bin/python benchmarks/quality.py --ctr-rows 200000  # a quicker look
    .venv/bin/python benchmarks/quality.py --only penguins
    .venv/bin/python benchmarks/quality.py --only ctr --ctr-seeds 0 1 2   # other data sets of the generator

Targets (the training issue, item 8):
- CTR example (examples/ctr/pipeline.py, its defaults: wide_and_deep, 4-wide embeddings, 2 epochs,
  batch 2048, as ``sluice demo --rows 1000000`` / ``make demo`` runs it): the Evaluator's eval AUC
  within 0.01 of the generator's Bayes-optimal AUC (``examples.ctr.data.bayes_optimal_auc``) at
  1M rows;
- penguins example (examples/penguins/pipeline.py, its defaults): eval accuracy >= 0.97.

Both pipelines run with the LocalRunner on the local (embedded) engine in a fresh temporary
store and artifact folder (nothing cached), so every step runs. Small-scale versions of both
checks live in the tests; this script is the full-scale figure recorded in benchmarks/RESULTS.md.
Exits 1 when a target is missed (2 when a pipeline fails).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
CTR_MAX_GAP = 0.01
PENGUINS_MIN_ACCURACY = 0.97


def run_example(name: str, params: dict[str, str], work: str):
    from sluice.artifacts import ArtifactStore
    from sluice.metadata import MetadataStore
    from sluice.runner import LocalRunner
    from sluice.runner.pipeline_file import load_pipeline

    pipeline, typed, _ = load_pipeline(os.path.join(REPO, "examples", name, "pipeline.py"),
                                       {**params, "serving_dir": os.path.join(work, "serving")})
    runner = LocalRunner(MetadataStore.open(os.path.join(work, "metadata.db")),
                         ArtifactStore(os.path.join(work, "artifacts")), engine="local", progress=False,
                         log_dir=os.path.join(work, "logs"))
    t0 = time.perf_counter()
    result = runner.run(pipeline, typed)
    seconds = time.perf_counter() - t0
    if result.status != "succeeded":
        for step in result.failed:
            print(f"{name}: {step.name} failed: {step.error} (log {step.log_path})", file=sys.stderr)
        raise SystemExit(2)
    return result, seconds


def ctr(rows: int, work: str, seed: int = 0) -> dict:
    result, seconds = run_example("ctr", {"rows": str(rows), "seed": str(seed)}, work)
    bayes = float(result.output("ctr_data_generator", "data").properties["bayes_optimal_auc"])
    metrics = result.output("Evaluator", "evaluation").properties["metrics"]
    gap = bayes - float(metrics["auc"])
    return {"rows": rows, "seed": seed, "auc": float(metrics["auc"]), "log_loss": float(metrics["log_loss"]),
            "bayes_optimal_auc": bayes, "gap": gap, "target": f"gap <= {CTR_MAX_GAP}",
            "met": gap <= CTR_MAX_GAP, "seconds": seconds}


def penguins(work: str) -> dict:
    result, seconds = run_example("penguins", {}, work)
    metrics = result.output("Evaluator", "evaluation").properties["metrics"]
    acc = float(metrics["accuracy"])
    return {"accuracy": acc, "target": f"accuracy >= {PENGUINS_MIN_ACCURACY}", "met": acc >= PENGUINS_MIN_ACCURACY,
            "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ctr-rows", type=int, default=1_000_000)
    ap.add_argument("--ctr-seeds", type=int, nargs="+", default=[0],
                    help="data sets of the CTR generator to check (default: 0, the example's own)")
    ap.add_argument("--only", choices=["ctr", "penguins"], help="run one of the two")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    out: dict[str, dict] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sluice-quality-") as work:
        for seed in args.ctr_seeds if args.only in (None, "ctr") else []:
            out["ctr" if seed == args.ctr_seeds[0] else f"ctr-seed{seed}"] = ctr(args.ctr_rows, os.path.join(work, f"ctr{seed}"), seed)
        if args.only in (None, "penguins"):
            out["penguins"] = penguins(os.path.join(work, "penguins"))
    load_after = os.getloadavg()

    print(f"\ncommand: {' '.join([os.path.relpath(sys.executable, REPO), *sys.argv])}")
    print(f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    for c in (v for k, v in out.items() if k.startswith("ctr")):
        print(f"CTR ({c['rows']:,} rows, seed {c['seed']}, local engine, {c['seconds']:.0f} s)")
        print(f"  model AUC        {c['auc']:.4f}   (log loss {c['log_loss']:.4f})")
        print(f"  Bayes-optimal    {c['bayes_optimal_auc']:.4f}")
        print(f"  gap              {c['gap']:.4f}   target {c['target']}: {'PASS' if c['met'] else 'FAIL'}")
    if "penguins" in out:
        p = out["penguins"]
        print(f"penguins (local engine, {p['seconds']:.0f} s)")
        print(f"  accuracy         {p['accuracy']:.4f}   target {p['target']}: {'PASS' if p['met'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"load": [load_before, load_after], **out}, fh, indent=1)
    sys.exit(0 if all(v["met"] for v in out.values()) else 1)


if __name__ == "__main__":
    main()
