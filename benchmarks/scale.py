"""Out of core: ExampleGen -> StatisticsGen -> Transform on 1M, 10M and 50M CTR rows, memory bounded.

    .venv/bin/python benchmarks/scale.py --rows 1000000 10000000
    nohup .venv/bin/python benchmarks/scale.py --rows 50000000 --json scale-50m.json > scale-50m.log 2>&1 &

For each size the CTR generator (examples/ctr/data.py, seed 0) writes the raw data ONCE,
in chunks, as Parquet files of 1,000,000 rows under ``--data-dir`` (default
benchmarks/.data, git-ignored; reused by later runs). Then a fresh process runs the three
steps with the LocalRunner (``max_parallel=1``, one step at a time, caching irrelevant: a
fresh metadata store and artifact root per run) under ``/usr/bin/time -v``, which gives the
whole process's peak RSS and wall time (Python start-up and imports included). The steps'
own durations come from the metadata store. The Transform is the CTR example's
``preprocessing_fn`` (z-scores and 32 quantile buckets of I1..I13, vocabularies of C1..C26
keeping values seen 100 times or more, five hashed crosses; 16 buckets, every value and three
crosses before 2026-11-24's quality work), fitted on the train split (80%) and applied to both splits.

Reported: rows/s per step and for the whole run, seconds per million rows (flat = linear
scaling), peak RSS (target: under 3 GiB at 50M rows), and that every row came out of the
Transform. The engine runs with its defaults unless ``--memory-limit`` / ``--threads`` are given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

STEPS = ["ExampleGen", "StatisticsGen", "Transform"]
RSS_TARGET_GIB = 3.0

DRIVER = textwrap.dedent('''
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from examples.ctr.pipeline import preprocessing_fn
    from sluice import Pipeline
    from sluice.artifacts import ArtifactStore
    from sluice.components import ExampleGen, StatisticsGen, Transform
    from sluice.metadata import MetadataStore
    from sluice.runner import LocalRunner

    import threading
    from datetime import timezone

    raw, options = sys.argv[2], json.loads(sys.argv[3])
    samples = []  # (time, RSS MiB) twice a second: which step holds the peak

    def sample():
        while True:
            rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
            samples.append((time.time(), rss / 1024))
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    gen = ExampleGen(input=raw, key="user_id", splits={"train": 0.8, "eval": 0.2})
    stats = StatisticsGen(examples=gen.outputs.examples)
    transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
    store = MetadataStore.open("metadata.db")
    # One step at a time, so the peak is what one step needs (concurrent steps add up).
    runner = LocalRunner(store, ArtifactStore("artifacts"), progress=False, max_parallel=1,
                         log_dir="logs", engine_options=options)
    t0 = time.perf_counter()
    result = runner.run(Pipeline("scale", [gen, stats, transform]))
    wall = time.perf_counter() - t0
    if result.status != "succeeded":
        print("FAILED", [(s.name, s.error) for s in result.failed], flush=True)
        sys.exit(1)
    steps, step_rss = {}, {}
    for e in store.executions(result.run_id):
        steps[e.step] = e.duration
        a, b = (d if d.tzinfo else d.replace(tzinfo=timezone.utc) for d in (e.started_at, e.ended_at))
        inside = [m for t, m in samples if a.timestamp() <= t <= b.timestamp()]
        step_rss[e.step] = max(inside, default=None)
    peak_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print("RESULT " + json.dumps({
        "run_s": wall, "steps": steps, "step_peak_rss_mb": step_rss,
        "examples_rows": result.output("ExampleGen", "examples").properties["rows"],
        "statistics_rows": sum(result.output("StatisticsGen", "statistics").properties["splits"].values()),
        "transform_rows": result.output("Transform", "transformed_examples").properties["rows"],
        "vmhwm_mb": peak_kb / 1024}), flush=True)
''')


def generate(data_dir: str, rows: int) -> tuple[str, float]:
    """The raw Parquet data (1M rows per file), generated once; returns (dir, MiB)."""
    from benchmarks.data_plane import dataset  # same cache as the data-plane benchmark

    files = dataset(data_dir, rows)
    return os.path.dirname(files[0]), sum(os.path.getsize(f) for f in files) / 2**20


def check_disk(path: str, rows: int, mib_per_million: float) -> None:
    """Raw data + the split copy + transformed data + DuckDB spill: ~4x the raw size, with margin."""
    need = 4 * mib_per_million * rows / 1e6 * 2**20 + 5 * 2**30
    free = shutil.disk_usage(path).free
    print(f"disk: {free / 2**30:,.0f} GiB free at {path}, this size needs ~{need / 2**30:,.0f} GiB", flush=True)
    if free < need:
        raise SystemExit(f"not enough disk space for {rows:,} rows: {free / 2**30:.0f} GiB free, "
                         f"~{need / 2**30:.0f} GiB needed")


def parse_time_v(text: str) -> dict[str, float]:
    """Peak RSS (MiB) and wall seconds from ``/usr/bin/time -v``'s report."""
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    return {"peak_rss_mb": rss, "process_wall_s": secs}


def run_size(args: argparse.Namespace, rows: int) -> dict:
    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    ref = os.path.join(data_dir, "ctr-1000000-seed0")
    per_million = (sum(os.path.getsize(os.path.join(ref, f)) for f in os.listdir(ref)) / 2**20
                   if os.path.isdir(ref) else 45.0)
    check_disk(data_dir, rows, per_million)
    t0 = time.perf_counter()
    raw, mib = generate(data_dir, rows)
    print(f"[{rows:,}] raw data: {mib:,.0f} MiB Parquet ({raw}; ready in {time.perf_counter() - t0:.0f}s)",
          flush=True)
    options = {k: v for k, v in (("memory_limit", args.memory_limit), ("threads", args.threads)) if v}
    work = tempfile.mkdtemp(prefix=f"scale-{rows}-", dir=os.path.join(data_dir))
    try:
        with open(os.path.join(work, "driver.py"), "w") as f:
            f.write(DRIVER)
        cmd = ["/usr/bin/time", "-v", sys.executable, "driver.py", REPO, raw, json.dumps(options)]
        print(f"[{rows:,}] running ExampleGen -> StatisticsGen -> Transform "
              f"(engine options {options or 'default'}) ...",
              flush=True)
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{rows:,} rows: run failed (exit {proc.returncode})\n{proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-3000:]}")
        out = json.loads(lines[-1][len("RESULT "):])
        out.update(parse_time_v(proc.stderr))
        out.update({"rows": rows, "raw_mib": mib, "engine_options": options})
        out["artifacts_mib"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                                   os.walk(os.path.join(work, "artifacts")) for f in fs) / 2**20
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"[{rows:,}] done: run {out['run_s']:.0f}s, process {out['process_wall_s']:.0f}s, "
          f"peak RSS {out['peak_rss_mb']:,.0f} MiB, rows out {out['transform_rows']:,}", flush=True)
    return out


def report(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="Out of core on the local engine: ExampleGen -> StatisticsGen -> Transform "
                        "(one fresh process per size)", title_justify="left")
    for col in ["rows", "raw MiB"] + [f"{s} rows/s" for s in STEPS] + \
               ["run rows/s", "run s", "process s", "s per 1M rows", "peak RSS MiB", "rows out"]:
        table.add_column(col, justify="right")
    for r in results:
        n = r["rows"]
        ok = n == r["transform_rows"] == r["examples_rows"] == r["statistics_rows"]
        table.add_row(f"{n:,}", f"{r['raw_mib']:,.0f}", *[f"{n / r['steps'][s]:,.0f}" for s in STEPS],
                      f"{n / r['run_s']:,.0f}", f"{r['run_s']:,.1f}", f"{r['process_wall_s']:,.1f}",
                      f"{r['run_s'] / (n / 1e6):,.2f}",
                      f"{r['peak_rss_mb']:,.0f}" + ("" if r["peak_rss_mb"] < RSS_TARGET_GIB * 1024
                                                    else " [red]>3GiB[/]"),
                      f"{r['transform_rows']:,}" if ok else f"[bold red]{r['transform_rows']:,} MISMATCH[/]")
    console.print(table)
    steps = Table(title="Seconds per million rows, per step (flat across sizes = linear)", title_justify="left")
    for col in ["rows"] + STEPS + ["whole run"]:
        steps.add_column(col, justify="right")
    for r in results:
        m = r["rows"] / 1e6
        steps.add_row(f"{r['rows']:,}", *[f"{r['steps'][s] / m:.2f}" for s in STEPS], f"{r['run_s'] / m:.2f}")
    console.print(steps)
    rss = Table(title="Peak RSS (MiB) while each step ran (sampled every 0.5 s)", title_justify="left")
    for col in ["rows", "engine options"] + STEPS + ["whole process (time -v)"]:
        rss.add_column(col, justify="right")
    for r in results:
        per = r.get("step_peak_rss_mb", {})
        rss.add_row(f"{r['rows']:,}", json.dumps(r["engine_options"]) if r["engine_options"] else "default",
                    *[f"{per[s]:,.0f}" if per.get(s) else "" for s in STEPS], f"{r['peak_rss_mb']:,.0f}")
    console.print(rss)
    if len(results) > 1:
        a, b = results[0], results[-1]
        growth = (b["run_s"] / a["run_s"]) / (b["rows"] / a["rows"])
        console.print(f"time grows {b['run_s'] / a['run_s']:.1f}x for {b['rows'] / a['rows']:.0f}x the rows "
                      f"(1.00 = linear; measured {growth:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--data-dir", default=os.environ.get("SLUICE_BENCH_DATA", os.path.join(HERE, ".data")))
    ap.add_argument("--memory-limit", default=None, help="engine memory limit, e.g. 2GB (default: DuckDB's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the run directories (artifacts)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    results = [run_size(args, rows) for rows in sorted(args.rows)]
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv[1:], "cores": os.cpu_count(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
