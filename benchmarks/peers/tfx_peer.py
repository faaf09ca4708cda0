"""TFDV statistics and tf.Transform on Beam's DirectRunner: the TFX peers of benchmarks/data_plane.py.

Runs in its own virtual environment (benchmarks/.venv-tfx, created by data_plane.py):

    benchmarks/.venv-tfx/bin/python benchmarks/peers/tfx_peer.py --csv data.csv --rows 1000000

- statistics: ``tfdv.generate_statistics_from_csv`` (TFDV's fastest documented entry point
  for files like these; its default statistics: counts, missing, mean/std/min/max/zeros,
  quantiles, histograms, top-k and unique counts). The row count is the statistics
  proto's ``num_examples``.
- transform: ``tft_beam.AnalyzeAndTransformDataset`` on the CSV through tfx_bsl's CSV TFXIO,
  with the same features as Sluice's (``scale_to_z_score(log1p(max(fill 0, 0)))`` on
  I1..I13, ``compute_and_apply_vocabulary(top_k=20000, num_oov_buckets=1)`` on C1..C26, the
  label passed through), Arrow record batches out (``output_record_batches=True``, the
  fast path), written to Parquet shards; rows written are counted in the pipeline.

Beam's DirectRunner runs ``--mode in_memory`` (one worker; default) or ``multi_processing``
(``--workers``, default 2; TFDV was seen to drop rows silently in that mode). Prints
``RESULT {json}`` with the same fields as the other peers. Imports and Beam/TF start-up
(the first pipeline's) are inside the clock, as a user of TFDV pays them once per run;
``startup`` reports the import time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

NUMERIC = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
COLUMNS = ["user_id", "timestamp", "label"] + NUMERIC + CATEGORICAL
TOP_K = 20_000


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def pipeline_options(mode: str, workers: int):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = ["--runner=DirectRunner", f"--direct_running_mode={mode}"]
    if mode != "in_memory":
        args.append(f"--direct_num_workers={workers}")
    return PipelineOptions(args)


def statistics(csv: str, work: str, mode: str, workers: int) -> int:
    import tensorflow_data_validation as tfdv

    stats = tfdv.generate_statistics_from_csv(
        data_location=csv, output_path=os.path.join(work, "stats.tfrecord"),
        pipeline_options=pipeline_options(mode, workers))
    return int(stats.datasets[0].num_examples)


def preprocessing_fn(inputs):
    import tensorflow as tf
    import tensorflow_transform as tft

    out = {}
    for c in NUMERIC:  # VarLen (may be missing) -> dense with 0 for missing
        x = tf.squeeze(tft.sparse_tensor_to_dense_with_shape(inputs[c], [None, 1], default_value=0.0), axis=1)
        out[c] = tft.scale_to_z_score(tf.math.log1p(tf.maximum(x, 0.0)))
    for c in CATEGORICAL:
        out[c] = tft.compute_and_apply_vocabulary(inputs[c], top_k=TOP_K, num_oov_buckets=1)
    out["label"] = inputs["label"]
    return out


def transform(csv: str, out_dir: str, work: str, mode: str, workers: int) -> int:
    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import schema_utils
    from tfx_bsl.public import tfxio

    spec = {c: tf.io.VarLenFeature(tf.float32) for c in NUMERIC}
    spec.update({c: tf.io.FixedLenFeature([], tf.string) for c in CATEGORICAL})
    spec.update({c: tf.io.FixedLenFeature([], tf.int64) for c in ("user_id", "timestamp", "label")})
    csv_tfxio = tfxio.BeamRecordCsvTFXIO(physical_format="text", column_names=COLUMNS,
                                         schema=schema_utils.schema_from_feature_spec(spec))
    os.makedirs(out_dir, exist_ok=True)
    counter = os.path.join(work, "rows_written")

    class WriteParquet(beam.DoFn):
        """One Parquet shard per bundle; list<x> columns of length 1 flattened to scalars."""

        def start_bundle(self):
            self.writer, self.rows = None, 0

        def process(self, element):
            batch = element[0] if isinstance(element, tuple) else element
            cols = [c.flatten() if pa.types.is_list(c.type) or pa.types.is_large_list(c.type) else c
                    for c in batch.columns]
            table = pa.Table.from_arrays(cols, names=batch.schema.names)
            if self.writer is None:
                import uuid
                self.writer = pq.ParquetWriter(os.path.join(out_dir, f"part-{uuid.uuid4().hex}.parquet"),
                                               table.schema, compression="zstd")
            self.writer.write_table(table)
            self.rows += table.num_rows

        def finish_bundle(self):
            if self.writer is not None:
                self.writer.close()
                with open(counter, "a") as f:  # rows per shard, summed after the run
                    f.write(f"{self.rows}\n")

    with beam.Pipeline(options=pipeline_options(mode, workers)) as p:
        with tft_beam.Context(temp_dir=os.path.join(work, "tft-tmp")):
            raw = (p | "Read" >> beam.io.ReadFromText(csv, skip_header_lines=1, coder=beam.coders.BytesCoder())
                   | "Decode" >> csv_tfxio.BeamSource())
            (transformed, _), _ = ((raw, csv_tfxio.TensorAdapterConfig())
                                   | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn,
                                                                         output_record_batches=True))
            _ = transformed | "Write" >> beam.ParDo(WriteParquet())
    with open(counter) as f:
        rows = sum(int(line) for line in f if line.strip())
    os.remove(counter)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--mode", choices=["in_memory", "multi_processing"], default="in_memory")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=["statistics", "transform"], default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    import tensorflow_data_validation  # noqa: F401
    import tensorflow_transform  # noqa: F401
    result = {"startup": time.perf_counter() - t0, "stats": [], "transform": [], "stats_rows": [],
              "transform_rows": [], "mode": args.mode}
    work = tempfile.mkdtemp(prefix="bench-tfx-", dir=args.work_dir)
    try:
        for i in range(args.repeat):
            if args.only != "transform":
                t0 = time.perf_counter()
                n = statistics(args.csv, work, args.mode, args.workers)
                result["stats"].append(time.perf_counter() - t0)
                result["stats_rows"].append(n)
                print(f"  tfx run {i + 1}/{args.repeat}: TFDV {result['stats'][-1]:.1f}s ({n:,} rows)",
                      file=sys.stderr, flush=True)
            if args.only != "statistics":
                out = os.path.join(work, f"transformed-{i}")
                t0 = time.perf_counter()
                m = transform(args.csv, out, work, args.mode, args.workers)
                result["transform"].append(time.perf_counter() - t0)
                result["transform_rows"].append(m)
                shutil.rmtree(out, ignore_errors=True)
                print(f"  tfx run {i + 1}/{args.repeat}: tf.Transform {result['transform'][-1]:.1f}s ({m:,} rows)",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
