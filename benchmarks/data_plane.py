"""The data plane, side by side: statistics and transform fit + apply on the CTR data.

    .venv/bin/python benchmarks/data_plane.py --rows 1000000 10000000 --repeat 3 --json out.json
    .venv/bin/python benchmarks/data_plane.py --rows 200000 --peers sluice-local duckdb   # quick look

The CTR data (examples/ctr/data.py, seed 0: user_id, timestamp, label, I1..I13, C1..C26) is
generated ONCE per size into ``--data-dir`` (default benchmarks/.data, git-ignored) as
Parquet files of 1,000,000 rows and reused by later runs; the TFX peers read a CSV copy.
Every peer starts from those files, on the same machine, back to back:

- sluice-local:  ``sluice.stats.compute`` and ``sluice.transform.fit`` + ``graph.transform``
                 (Parquet shards) on ``get_engine("local")`` (benchmarks/peers/sluice_peer.py);
- sluice-spark:  the same on ``get_engine("spark", master="local[2]")``, when the Spark engine
                 is registered in ``sluice.engine.ENGINES`` (n/a with the reason otherwise);
- duckdb:        hand-written DuckDB SQL (peers/duckdb_peer.py);
- pyspark:       hand-written PySpark and Spark ML on local[2]; ``df.summary()`` as an extra
                 (peers/pyspark_peer.py);
- pandas:        describe + value_counts, pandas ops, to_parquet (peers/pandas_peer.py);
                 skipped with the reason where it would not fit in memory;
- tfx:           TFDV ``generate_statistics_from_csv`` and tf.Transform on Beam's DirectRunner
                 (peers/tfx_peer.py) in their own venv, benchmarks/.venv-tfx, created on
                 demand; only up to ``--tfx-max-rows`` (they take minutes per million rows).

The preprocessing is the CTR example's numeric and categorical features
(peers/features.py): ``zscore(log1p(clip(fill_missing(I, 0), 0)))`` on I1..I13, vocabularies
(top 20,000, 1 OOV bucket) on C1..C26, the label passed through.

Each peer runs in a fresh subprocess per size (its imports, JVM and session start before
the clock); each repetition times statistics, then transform (output deleted after each).
Fast peers run ``--repeat`` times, the slow ones (pyspark, sluice-spark, tfx)
``--slow-repeat`` times; tables show medians. Every peer's statistics row count and
transform output row count is checked against the input rows and a mismatch is flagged
(TFDV's multi-process mode was seen to drop rows with exit 0). The machine is shared and
noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

PEERS = ["sluice-local", "sluice-spark", "duckdb", "pyspark", "pandas", "tfx"]
SLOW = {"sluice-spark", "pyspark", "tfx"}
LABELS = {"sluice-local": "Sluice local (DuckDB+Arrow)", "sluice-spark": "Sluice on Spark local[2]",
          "duckdb": "DuckDB hand-written SQL", "pyspark": "PySpark local[2] hand-written",
          "pyspark-summary": "  PySpark df.summary()", "pandas": "pandas",
          "tfx": "TFDV / tf.Transform (Beam DirectRunner)"}
TFX_VENV = os.path.join(HERE, ".venv-tfx")
TFX_PACKAGES = ["tensorflow-data-validation==1.16.1", "tensorflow-transform==1.16.0", "tensorflow==2.16.2",
                "tf-keras==2.16.0", "apache-beam[gcp]==2.60.0", "pyarrow==10.0.1",
                # numpy must be pinned: with --ignore-requires-python pip otherwise picks a numpy
                # that needs Python 3.12 (and TF 2.16 needs numpy < 2 anyway).
                "numpy>=1.23.5,<2"]
# Anchors measured on this machine at 1M rows (seconds), for "skipped (too slow)" messages.
TFX_ANCHOR_1M = {"statistics": 180.0, "transform": 365.0}
PANDAS_BYTES_PER_ROW = 2600  # fallback peak-memory estimate when no smaller size was measured


# ----------------------------------------------------------------------------- data

def dataset(data_dir: str, rows: int, seed: int = 0) -> list[str]:
    """Parquet files of the CTR data at ``rows`` rows, generated once (a marker says complete)."""
    from examples.ctr import data as ctr_data

    out = os.path.join(data_dir, f"ctr-{rows}-seed{seed}")
    marker = os.path.join(out, "_COMPLETE")
    if not os.path.exists(marker):
        t0 = time.perf_counter()
        files = ctr_data.write(out, rows, seed, rows_per_file=1_000_000)
        with open(marker, "w") as f:
            f.write(f"{rows}\n")
        mb = sum(os.path.getsize(p) for p in files) / 2**20
        print(f"data: generated {rows:,} rows -> {out} ({len(files)} file(s), {mb:,.0f} MiB) "
              f"in {time.perf_counter() - t0:.0f}s", flush=True)
    return sorted(glob.glob(os.path.join(out, "part-*.parquet")))


def csv_copy(data_dir: str, rows: int, files: list[str], seed: int = 0) -> str:
    """One CSV file with a header (empty field = missing), written once by DuckDB for the TFX peers."""
    import duckdb

    path = os.path.join(data_dir, f"ctr-{rows}-seed{seed}-csv", "data.csv")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        src = "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"
        duckdb.connect().execute(f"COPY (SELECT * FROM {src}) TO '{path}.tmp' (FORMAT csv, HEADER)")
        os.replace(path + ".tmp", path)
    return path


# ----------------------------------------------------------------------------- child side

def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would count the forking parent)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def make_peer(name: str, files: list[str], rows: int, work: str, summary: bool) -> Any:
    if name == "sluice-local":
        from benchmarks.peers.sluice_peer import Peer
        return Peer(files, rows, work, "local")
    if name == "sluice-spark":
        from benchmarks.peers.sluice_peer import Peer
        # The same memory and scratch space as the hand-written PySpark peer (local mode: the driver
        # is the executor; Spark's default 1g heap spills and collects garbage at 10M rows).
        return Peer(files, rows, work, "spark", master="local[2]",
                    conf={"spark.driver.memory": "6g", "spark.local.dir": work})
    if name == "pyspark":
        from benchmarks.peers.pyspark_peer import Peer
        return Peer(files, rows, work, summary=summary)
    module = importlib.import_module(f"benchmarks.peers.{name}_peer")
    return module.Peer(files, rows, work)


def run_child(args: argparse.Namespace) -> None:
    files = sorted(glob.glob(os.path.join(args.files, "part-*.parquet")))
    work = tempfile.mkdtemp(prefix=f"bench-{args.child}-", dir=args.work_dir)
    result: dict[str, Any] = {"stats": [], "transform": [], "stats_rows": [], "transform_rows": []}
    try:
        t0 = time.perf_counter()
        peer = make_peer(args.child, files, args.rows, work, args.summary)
        result["startup"] = time.perf_counter() - t0
        for i in range(args.repeat):
            t0 = time.perf_counter()
            n = peer.statistics()
            result["stats"].append(time.perf_counter() - t0)
            result["stats_rows"].append(n)
            if hasattr(peer, "after_statistics"):  # extras timed by the peer itself
                peer.after_statistics()
            out = os.path.join(work, f"transformed-{i}")
            t0 = time.perf_counter()
            m = peer.transform(out)
            result["transform"].append(time.perf_counter() - t0)
            if m < 0:  # counted after the clock
                m = peer.rows_written(out)
            result["transform_rows"].append(m)
            shutil.rmtree(out, ignore_errors=True)
            print(f"  {args.child} run {i + 1}/{args.repeat}: statistics {result['stats'][-1]:.2f}s "
                  f"({n:,} rows), transform {result['transform'][-1]:.2f}s ({m:,} rows)",
                  file=sys.stderr, flush=True)
        result.update(getattr(peer, "extras", dict)())
        if hasattr(peer, "close"):
            peer.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- parent side

def spawn(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a peer's child process; stream its progress (stderr); parse its RESULT line."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=None, text=True,
                            env={**os.environ, **(env or {})})
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"status": "failed", "reason": f"timed out after {timeout:.0f}s"}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = stdout.strip().splitlines()[-5:]
        return {"status": "failed", "reason": f"exit {proc.returncode}: {' | '.join(tail)[-400:]}"}
    out = json.loads(lines[-1][len("RESULT "):])
    out["status"] = "ok"
    return out


def tfx_python(install: bool) -> tuple[str | None, str]:
    """The TFX venv's interpreter (created on demand), or None and why not."""
    py = os.path.join(TFX_VENV, "bin", "python")
    check = [py, "-c", "import tensorflow_data_validation, tensorflow_transform"]
    if os.path.exists(py) and subprocess.run(check, capture_output=True).returncode == 0:
        return py, ""
    if not install:
        return None, f"{TFX_VENV} missing or broken (run without --no-tfx-install to create it)"
    print(f"tfx: creating {TFX_VENV} (pip, several minutes) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", TFX_VENV], [py, "-m", "pip", "install", "-q", "--upgrade", "pip"],
             [py, "-m", "pip", "install", "-q", "--ignore-requires-python", *TFX_PACKAGES]]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            return None, f"creating the TFX venv failed: {proc.stderr.strip()[-300:]}"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, "the TFX venv was created but tensorflow_data_validation does not import"
    return py, ""


def mem_available_bytes() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) * 1024


def run_size(args: argparse.Namespace, rows: int, pandas_per_row: list[float]) -> dict[str, dict[str, Any]]:
    files = dataset(args.data_dir, rows)
    files_dir = os.path.dirname(files[0])
    results: dict[str, dict[str, Any]] = {}
    for peer in args.peers:
        repeat = args.slow_repeat if peer in SLOW else args.repeat
        cmd = [sys.executable, os.path.abspath(__file__), "--child", peer, "--files", files_dir,
               "--work-dir", args.work_dir, "--repeat", str(repeat)]
        if peer == "sluice-spark":
            from sluice.engine import ENGINES
            if "spark" not in ENGINES:
                results[peer] = {"status": "n/a", "reason": "no 'spark' engine in sluice.engine.ENGINES yet "
                                                            f"(registered: {', '.join(sorted(ENGINES))})"}
                print(f"[{rows:,}] {peer}: n/a ({results[peer]['reason']})", flush=True)
                continue
        if peer == "pyspark" and rows <= args.spark_summary_max_rows:
            cmd.append("--summary")
        if peer in ("pyspark", "sluice-spark") and args.spark_max_rows and rows > args.spark_max_rows:
            results[peer] = {"status": "skipped", "reason": f"--spark-max-rows {args.spark_max_rows:,}"}
            print(f"[{rows:,}] {peer}: skipped ({results[peer]['reason']})", flush=True)
            continue
        if peer == "pandas":
            per_row = min(pandas_per_row) if pandas_per_row else PANDAS_BYTES_PER_ROW
            need, avail = per_row * rows, mem_available_bytes()
            if need > 0.7 * avail:
                basis = "measured" if pandas_per_row else "estimated"
                results[peer] = {"status": "skipped", "reason": (
                    f"needs ~{need / 2**30:.1f} GiB ({per_row:,.0f} B/row {basis} at a smaller size), "
                    f"{avail / 2**30:.1f} GiB available now")}
                print(f"[{rows:,}] {peer}: skipped ({results[peer]['reason']})", flush=True)
                continue
        if peer == "tfx":
            results[peer] = run_tfx(args, rows, files)
            continue
        print(f"[{rows:,}] {peer}: {repeat} run(s) ...", flush=True)
        results[peer] = spawn(cmd + ["--rows", str(rows)], args.child_timeout)
        if results[peer]["status"] != "ok":
            print(f"[{rows:,}] {peer}: FAILED {results[peer]['reason']}", flush=True)
        if peer == "pandas" and results[peer]["status"] == "ok":
            pandas_per_row.append(results[peer]["rss_mb"] * 2**20 / rows)
    return results


def run_tfx(args: argparse.Namespace, rows: int, files: list[str]) -> dict[str, Any]:
    if rows > args.tfx_max_rows:
        a = TFX_ANCHOR_1M
        reason = (f"too slow: ~{a['statistics']:.0f}s + ~{a['transform']:.0f}s at 1M rows, "
                  f"~{(a['statistics'] + a['transform']) * rows / 1e6 / 60:.0f} min per run here "
                  f"(raise --tfx-max-rows to run it)")
        print(f"[{rows:,}] tfx: skipped ({reason})", flush=True)
        return {"status": "skipped", "reason": reason}
    py, why = tfx_python(not args.no_tfx_install)
    if py is None:
        print(f"[{rows:,}] tfx: n/a ({why})", flush=True)
        return {"status": "n/a", "reason": why}
    csv = csv_copy(args.data_dir, rows, files)
    print(f"[{rows:,}] tfx: {args.slow_repeat} run(s) (minutes) ...", flush=True)
    cmd = [py, os.path.join(HERE, "peers", "tfx_peer.py"), "--csv", csv, "--rows", str(rows),
           "--work-dir", args.work_dir, "--repeat", str(args.slow_repeat), "--mode", args.tfx_mode]
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}  # TF/Google deprecation noise
    out = spawn(cmd, args.child_timeout, quiet)
    if out["status"] != "ok":
        print(f"[{rows:,}] tfx: FAILED {out['reason']}", flush=True)
    return out


# ----------------------------------------------------------------------------- report

def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def rows_cell(got: list[int], rows: int) -> tuple[str, bool]:
    """The row counts a peer reported, and whether every one equals the input rows."""
    if not got:
        return "", True
    bad = [n for n in got if n != rows]
    if not bad:
        return f"{got[0]:,}", True
    return f"[bold red]MISMATCH {bad[0]:,} of {rows:,}[/]", False


def report(all_results: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    """Print one rich table per size plus the targets; returns the mismatch messages."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    problems: list[str] = []
    for rows, results in all_results.items():
        base = results.get("sluice-local", {})
        b_stats, b_tr = med(base.get("stats", [])), med(base.get("transform", []))
        table = Table(title=f"CTR data, {rows:,} rows: seconds (median), peer / Sluice local "
                            f"(>1 = Sluice faster)", title_justify="left")
        for col in ("peer", "runs", "statistics s", "stats rows", "peer/Sluice", "transform s",
                    "rows out", "peer/Sluice", "peak RSS MiB"):
            table.add_column(col, justify="left" if col == "peer" else "right")
        for peer, r in results.items():
            if r.get("status") != "ok":
                table.add_row(LABELS[peer], "", f"{r.get('status')}: {r.get('reason', '')}", *[""] * 6)
                continue
            s, t = med(r["stats"]), med(r["transform"])
            s_rows, ok1 = rows_cell(r["stats_rows"], rows)
            t_rows, ok2 = rows_cell(r["transform_rows"], rows)
            for ok, what, got in ((ok1, "statistics", r["stats_rows"]), (ok2, "transform", r["transform_rows"])):
                if not ok:
                    problems.append(f"{rows:,} rows: {LABELS[peer]} {what} counted {got} rows, not {rows:,}")
            rss = "" if peer in ("pyspark", "sluice-spark", "tfx") else f"{r['rss_mb']:,.0f}"
            if peer in ("pyspark", "sluice-spark"):
                rss = "(JVM)"
            table.add_row(LABELS[peer], str(len(r["stats"])), f"{s:,.2f}", s_rows,
                          f"{s / b_stats:,.2f}" if b_stats else "", f"{t:,.2f}", t_rows,
                          f"{t / b_tr:,.2f}" if b_tr else "", rss)
            if peer == "pyspark" and r.get("summary"):
                sm = med(r["summary"])
                srows, ok = rows_cell([r["summary_rows"]], rows)
                if not ok:
                    problems.append(f"{rows:,} rows: df.summary() counted {r['summary_rows']}")
                table.add_row(LABELS["pyspark-summary"], str(len(r["summary"])), f"{sm:,.2f}", srows,
                              f"{sm / b_stats:,.2f}" if b_stats else "", "", "", "", "")
        console.print(table)
        if base.get("profile"):
            prof = Table(title=f"Sluice local, {rows:,} rows: time per engine call (median s)",
                         title_justify="left")
            prof.add_column("call")
            prof.add_column("s", justify="right")
            for k, v in base["profile"].items():
                prof.add_row(k, f"{med(v):.2f}")
            console.print(prof)
        targets(console, rows, results)
    for p in problems:
        console.print(f"[bold red]ROW COUNT MISMATCH: {p}[/]")
    return problems


def targets(console: Any, rows: int, results: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    base = results.get("sluice-local", {})
    if base.get("status") != "ok":
        return
    table = Table(title=f"Targets at {rows:,} rows", title_justify="left")
    for col in ("target", "statistics", "met", "transform", "met"):
        table.add_column(col, justify="left" if col == "target" else "right")
    checks = [("Sluice within 1.5x of DuckDB hand SQL (Sluice/DuckDB <= 1.5)", "duckdb", "le", 1.5, False),
              ("Sluice >= 15x faster than PySpark local[2]", "pyspark", "ge", 15, True),
              ("Sluice >= 50x faster than TFDV / tf.Transform", "tfx", "ge", 50, True)]
    for label, peer, op, bound, peer_over_base in checks:
        r = results.get(peer, {})
        if r.get("status") != "ok":
            table.add_row(label, f"{r.get('status', 'not run')}", "", "", "")
            continue
        cells = []
        for key in ("stats", "transform"):
            b, p = med(base[key]), med(r[key])
            ratio = p / b if peer_over_base else b / p
            met = ratio >= bound if op == "ge" else ratio <= bound
            cells += [f"{ratio:,.2f}x", "[green]yes[/]" if met else "[bold red]no[/]"]
        table.add_row(label, *cells)
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--repeat", type=int, default=3, help="runs of the fast peers (median)")
    ap.add_argument("--slow-repeat", type=int, default=1, help="runs of pyspark, sluice-spark and tfx")
    ap.add_argument("--peers", nargs="+", choices=PEERS, default=PEERS)
    ap.add_argument("--data-dir", default=os.environ.get("SLUICE_BENCH_DATA", os.path.join(HERE, ".data")))
    ap.add_argument("--work-dir", default=None, help="scratch space for outputs (default: DATA_DIR/work)")
    ap.add_argument("--json", help="also write all timings here")
    ap.add_argument("--tfx-max-rows", type=int, default=1_000_000)
    ap.add_argument("--tfx-mode", choices=["in_memory", "multi_processing"], default="in_memory",
                    help="Beam DirectRunner mode for TFDV/tf.Transform (multi_processing was seen to drop rows)")
    ap.add_argument("--no-tfx-install", action="store_true", help="do not create benchmarks/.venv-tfx")
    ap.add_argument("--spark-max-rows", type=int, default=0, help="skip the Spark peers above this (0: never)")
    ap.add_argument("--spark-summary-max-rows", type=int, default=1_000_000,
                    help="also time PySpark's df.summary() up to this size")
    ap.add_argument("--child-timeout", type=float, default=4 * 3600)
    # child mode (internal)
    ap.add_argument("--child", choices=PEERS, help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--summary", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work_dir = args.work_dir or os.path.join(args.data_dir, "work")
    os.makedirs(args.work_dir, exist_ok=True)
    if args.child:
        args.rows = args.rows[0]
        run_child(args)
        return

    started = time.time()
    all_results: dict[int, dict[str, dict[str, Any]]] = {}
    pandas_per_row: list[float] = []
    for rows in sorted(args.rows):
        all_results[rows] = run_size(args, rows, pandas_per_row)
    problems = report(all_results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                       "argv": sys.argv[1:], "cores": os.cpu_count(),
                       "results": {str(k): v for k, v in all_results.items()},
                       "row_count_mismatches": problems}, f, indent=1)
    if problems:
        sys.exit(2)


if __name__ == "__main__":
    main()
