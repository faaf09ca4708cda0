"""Time every step of the example pipelines, end to end, with caching off.

    .venv/bin/python benchmarks/pipeline_steps.py --example ctr --rows 1000000 --repeat 3
    .venv/bin/python benchmarks/pipeline_steps.py --example penguins --repeat 5

Each repetition runs in a fresh temporary working directory (own metadata
store and artifacts), as `sluice run` would. Prints the median seconds per
step and of the whole run, the spread, and the model's quality. The machines
here are shared and noisy: quote medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from sluice.artifacts import ArtifactStore  # noqa: E402
from sluice.metadata import MetadataStore  # noqa: E402
from sluice.runner import LocalRunner  # noqa: E402
from sluice.runner.pipeline_file import load_pipeline  # noqa: E402


def run_once(example: str, rows: int | None) -> tuple[float, dict[str, float], dict[str, float]]:
    """One cold run in a fresh directory: (wall seconds, seconds per step, evaluation metrics)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        os.chdir(tmp)
        try:
            params = {"rows": str(rows)} if rows else {}
            pipeline, typed, _ = load_pipeline(os.path.join(REPO, "examples", example, "pipeline.py"), params)
            store = MetadataStore.open(os.path.join(tmp, "metadata.db"))
            runner = LocalRunner(store, ArtifactStore(os.path.join(tmp, "artifacts")), progress=False,
                                 log_dir=os.path.join(tmp, "logs"))
            started = time.perf_counter()
            result = runner.run(pipeline, typed)
            wall = time.perf_counter() - started
            if result.status != "succeeded":
                raise SystemExit(f"run failed: {[(s.name, s.error) for s in result.failed]}")
            steps = {e.step: e.duration for e in store.executions(result.run_id)}
            metrics = result.output("Evaluator", "evaluation").properties["metrics"]
            return wall, steps, metrics
        finally:
            os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", choices=["ctr", "penguins"], default="ctr")
    parser.add_argument("--rows", type=int, default=None, help="rows (ctr default: the pipeline's default)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    walls, per_step, quality = [], {}, []
    for i in range(args.repeat):
        wall, steps, metrics = run_once(args.example, args.rows)
        walls.append(wall)
        for name, secs in steps.items():
            per_step.setdefault(name, []).append(secs)
        quality.append(metrics.get("auc", metrics.get("accuracy")))
        print(f"run {i + 1}/{args.repeat}: {wall:.1f}s", flush=True)
    print(f"\n{args.example} pipeline, rows={args.rows or 'default'}, {args.repeat} cold runs, median (min-max) seconds")
    print(f"{'step':<24}{'median':>8}{'min':>8}{'max':>8}")
    for name, values in per_step.items():
        print(f"{name:<24}{statistics.median(values):8.1f}{min(values):8.1f}{max(values):8.1f}")
    print(f"{'whole run (wall)':<24}{statistics.median(walls):8.1f}{min(walls):8.1f}{max(walls):8.1f}")
    metric = "auc" if args.example == "ctr" else "accuracy"
    print(f"{metric}: median {statistics.median(quality):.4f} (min {min(quality):.4f}, max {max(quality):.4f})")


if __name__ == "__main__":
    main()
