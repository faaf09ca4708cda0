"""The ``sluice`` command line.

Heavy libraries (torch, the server) are imported inside the commands that
need them, so ``sluice --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

STORE_HELP = ("Metadata store: a SQLite file path or a SQLAlchemy URL such as "
              "postgresql://user@host/db. Default: $SLUICE_STORE or .sluice/metadata.db.")


def _store(url: str | None) -> Any:
    from sluice.metadata import MetadataStore

    return MetadataStore.open(url)


def _console() -> Any:
    from rich.console import Console

    return Console()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sluice-ml", prog_name="sluice")
def cli() -> None:
    """Sluice: end-to-end machine learning on big data.

    \b
    Typical session:
      sluice demo --rows 100000                                 # the CTR example, end to end
      sluice run examples/ctr/pipeline.py --param rows=100000   # run a pipeline
      sluice runs                                               # what ran, how it ended
      sluice runs compare RUN RUN                               # parameters and metrics side by side
      sluice show RUN_ID                                        # steps, timings, artifacts
      sluice lineage ARTIFACT_ID                                # where it came from, where it went
      sluice ui                                                 # the web UI on http://127.0.0.1:8765
      sluice serve --model-dir serving/ctr                      # serve the pushed model over HTTP

    Everything is recorded in .sluice/ in the working directory (override with
    --store / $SLUICE_STORE and --artifacts / $SLUICE_ARTIFACTS).
    """


ENGINE_HELP = """Data-plane engine: 'local' (DuckDB + Arrow, in this process) or 'spark' (PySpark;
needs pip install 'sluice-ml[spark]' and Java 17). The pipeline file does not change."""


@cli.command()
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Pipeline parameter, repeatable (e.g. -p rows=1000000).")
@click.option("--engine", default="local", show_default=True, help=ENGINE_HELP)
@click.option("--no-cache", is_flag=True, help="Run every step even if a cached result exists.")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
@click.option("--artifacts", envvar="SLUICE_ARTIFACTS", default=os.path.join(".sluice", "artifacts"),
              show_default=True, help="Artifact root: a path or any fsspec URI (s3://bucket/prefix).")
@click.option("--retries", default=0, show_default=True, help="Retries per failing step (with backoff).")
@click.option("--parallel", default=4, show_default=True, help="Steps run at once when independent.")
@click.option("--memory-limit", default=None,
              help="local engine: memory limit, e.g. 4GB (DuckDB spills beyond it).")
@click.option("--master", default=None, metavar="URL",
              help="spark engine: local[*] (default), local[N], spark://HOST:PORT, yarn or k8s://...")
@click.option("--executor-memory", default=None, metavar="SIZE", help="spark engine: memory per executor, e.g. 8g.")
@click.option("--spark-conf", "spark_conf", multiple=True, metavar="KEY=VALUE",
              help="spark engine: any Spark setting, repeatable (e.g. --spark-conf spark.executor.cores=4).")
@click.option("--engine-config", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="spark engine: YAML file with a 'spark:' section (master, app_name, executor_memory, "
                   "driver_memory, conf); the options above override it.")
def run(pipeline_file: str, params: tuple[str, ...], engine: str, no_cache: bool, store: str | None,
        artifacts: str, retries: int, parallel: int, memory_limit: str | None, master: str | None,
        executor_memory: str | None, spark_conf: tuple[str, ...], engine_config: str | None) -> None:
    """Run the pipeline defined in PIPELINE_FILE.

    The file defines `pipeline(...)` returning a Pipeline; its arguments are
    the parameters you can set with --param. Completed steps are reused from
    the cache (also after a crash), so re-running is cheap. If the file also
    defines `report(result, **params)`, it is called after a successful run.

    \b
    The same pipeline on Spark (statistics, transform and scoring run there;
    training reads the Parquet shards in this process):
      sluice run examples/ctr/pipeline.py --engine spark                      # local[*]
      sluice run examples/ctr/pipeline.py --engine spark --master spark://10.0.0.5:7077 \\
          --executor-memory 8g --spark-conf spark.executor.cores=4
      sluice run examples/ctr/pipeline.py --engine spark --engine-config engine.yaml
    On a cluster, --artifacts must be a folder every executor can read and write.
    """
    from sluice.runner.pipeline_file import load_pipeline, parse_params

    options = _engine_options(engine, memory_limit=memory_limit, master=master, executor_memory=executor_memory,
                              spark_conf=spark_conf, engine_config=engine_config)
    pipeline, typed, module = load_pipeline(pipeline_file, parse_params(params))
    result = _run(pipeline, typed, engine=engine, cache=not no_cache, store=store, artifacts=artifacts,
                  retries=retries, parallel=parallel, engine_options=options)
    if result.status == "succeeded" and hasattr(module, "report"):
        module.report(result, **typed)  # a pipeline file may summarize its results
    sys.exit(0 if result.status == "succeeded" else 1)


def _engine_options(engine: str, *, memory_limit: str | None, master: str | None, executor_memory: str | None,
                    spark_conf: tuple[str, ...], engine_config: str | None) -> dict[str, Any]:
    """Check the engine name and its options; the keyword arguments ``get_engine`` receives."""
    from sluice.engine import ENGINES

    if engine not in ENGINES:
        raise click.BadParameter(f"unknown engine {engine!r}; available engines: {', '.join(sorted(ENGINES))}",
                                 param_hint="--engine")
    spark_given = [name for name, value in (("--master", master), ("--executor-memory", executor_memory),
                                            ("--spark-conf", spark_conf), ("--engine-config", engine_config)) if value]
    if engine != "spark":
        if spark_given:
            raise click.UsageError(f"{', '.join(spark_given)} only apply to --engine spark")
        return {"memory_limit": memory_limit} if memory_limit else {}
    if memory_limit:
        raise click.UsageError("--memory-limit applies to the local engine; on Spark use --executor-memory "
                               "or --spark-conf spark.driver.memory=4g")
    from sluice.engine.spark_session import SparkSettings

    conf = {}
    for item in spark_conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--spark-conf")
        conf[key.strip()] = value.strip()
    settings = SparkSettings.from_yaml(engine_config) if engine_config else SparkSettings()
    return {"settings": settings.with_overrides(master=master, executor_memory=executor_memory, conf=conf)}


def _run(pipeline: Any, params: dict[str, Any], *, engine: str, cache: bool, store: str | None,
         artifacts: str, retries: int, parallel: int, engine_options: dict[str, Any]) -> Any:
    from sluice.artifacts import ArtifactStore
    from sluice.runner import LocalRunner

    runner = LocalRunner(_store(store), ArtifactStore(artifacts), engine=engine, engine_options=engine_options,
                         cache=cache, retries=retries, max_parallel=parallel)
    result = runner.run(pipeline, params)
    console = _console()
    cached = sum(s.state == "cached" for s in result.steps.values())
    console.print(f"run [bold]{result.run_id}[/] {result.status} in {result.seconds:.1f}s"
                  f" ({len(result.steps)} steps, {cached} from cache)", highlight=False)
    for step in result.failed:
        console.print(f"[red]{step.name} failed:[/] {step.error}\n  log: {step.log_path}", highlight=False)
    return result


@cli.command()
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of click-through data to generate.")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
@click.option("--no-cache", is_flag=True, help="Run every step even if a cached result exists.")
def demo(rows: int, store: str | None, no_cache: bool) -> None:
    """Run the click-through-rate example end to end on the embedded engine.

    Generates RAW data with a known ground truth, then ExampleGen -> statistics
    -> schema -> validation -> Transform -> Trainer -> Evaluator -> Pusher, and
    prints the model's AUC next to the best AUC any model could reach.
    """
    from sluice.runner.pipeline_file import load_pipeline

    path = _find_example("ctr")
    pipeline, typed, module = load_pipeline(path, {"rows": str(rows)})
    result = _run(pipeline, typed, engine="local", cache=not no_cache, store=store,
                  artifacts=os.path.join(".sluice", "artifacts"), retries=0, parallel=4, engine_options={})
    if result.status != "succeeded":
        sys.exit(1)
    if hasattr(module, "report"):  # the example prints its AUC beside the Bayes-optimal one
        module.report(result, **typed)


def _find_example(name: str) -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (os.getcwd(), here):
        path = os.path.join(base, "examples", name, "pipeline.py")
        if os.path.isfile(path):
            return path
    raise click.ClickException(f"examples/{name}/pipeline.py not found; run from the Sluice repository")


@cli.group(invoke_without_command=True)
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--limit", default=20, show_default=True)
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
@click.pass_context
def runs(ctx: click.Context, pipeline: str | None, limit: int, store: str | None) -> None:
    """List recent runs: id, pipeline, status, start, duration, who ran it.

    \b
    sluice runs compare RUN RUN ...   puts runs side by side (parameters, final metrics).
    """
    ctx.obj = {"store": store}
    if ctx.invoked_subcommand is None:
        from sluice.cli_views import runs_table

        _console().print(runs_table(_store(store).runs(pipeline=pipeline, limit=limit)))


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN RUN...")
@click.option("--only-differences", is_flag=True, help="Show only the rows where the runs differ.")
@click.option("--store", default=None, help="As `sluice runs --store` (which also sets it).")
@click.pass_context
def runs_compare(ctx: click.Context, run_ids: tuple[str, ...], only_differences: bool, store: str | None) -> None:
    """Compare runs (ids or unique prefixes) side by side: pipeline, status, parameters and the
    final value of every metric; rows that differ are highlighted and marked in 'differs'.

    \b
      sluice runs compare 3f2a91 9c01de
      sluice runs compare 3f2a91 9c01de 77b2c0 --only-differences
    """
    from sluice.cli_views import compare_table

    store = store or (ctx.obj or {}).get("store")
    _console().print(compare_table(_store(store), list(run_ids), only_differences=only_differences))


@cli.command()
@click.argument("ref")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
def show(ref: str, store: str | None) -> None:
    """Show a run (by id or prefix) or an artifact (by number).

    A run shows each step's state, timing, fingerprint, log and outputs; an
    artifact shows its type, location, properties and producer.
    """
    from sluice.cli_views import show_ref

    show_ref(_console(), _store(store), ref)


@cli.command()
@click.argument("artifact_id", type=int)
@click.option("--direction", type=click.Choice(["up", "down", "both"]), default="both", show_default=True,
              help="up: what it was made from; down: what was made from it.")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
def lineage(artifact_id: int, direction: str, store: str | None) -> None:
    """Trace an artifact's lineage: which data made this model, what used this data."""
    from sluice.cli_views import lineage_tree

    _console().print(lineage_tree(_store(store), artifact_id, direction))


from sluice.cli_serving import models, serve, validate_serving  # noqa: E402  (click only; lazy inside)

cli.add_command(serve)
cli.add_command(models)
cli.add_command(validate_serving)


@cli.command()
@click.option("--keep-runs", default=10, show_default=True, help="Keep the newest N runs of each pipeline.")
@click.option("--older-than-days", default=None, type=float, help="Only delete runs older than this.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
@click.option("--artifacts", envvar="SLUICE_ARTIFACTS", default=os.path.join(".sluice", "artifacts"),
              show_default=True)
def gc(keep_runs: int, older_than_days: float | None, dry_run: bool, store: str | None, artifacts: str) -> None:
    """Delete old runs' artifacts that nothing kept depends on.

    Never deletes an artifact that a registered model version depends on
    (its data, transform, model), nor anything a kept run used.
    """
    from sluice.artifacts import ArtifactStore

    meta = _store(store)
    art_store = ArtifactStore(artifacts)
    doomed = meta.gc_candidates(keep_last_runs=keep_runs, older_than_days=older_than_days)
    console = _console()
    for art in doomed:
        console.print(f"{'would delete' if dry_run else 'deleting'} #{art.id} {art.type} {art.uri}",
                      highlight=False)
        if not dry_run:
            art_store.delete(art.uri)
    if not dry_run:
        meta.delete_artifact_records([a.id for a in doomed])
        removed = art_store.clean_staging()
        console.print(f"deleted {len(doomed)} artifact(s), {removed} abandoned staging folder(s)")


@cli.command()
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
@click.option("--artifacts", envvar="SLUICE_ARTIFACTS", default=os.path.join(".sluice", "artifacts"),
              show_default=True, help="Artifact root: the UI reads artifact files only inside it.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--token", envvar="SLUICE_UI_TOKEN", default=None,
              help="Bearer token required on every request ($SLUICE_UI_TOKEN). Off loopback one is "
                   "generated and printed when none is given.")
def ui(store: str | None, artifacts: str, host: str, port: int, token: str | None) -> None:
    """Serve the web UI: runs, DAGs, statistics, training curves, evaluation, lineage, models.

    Read-only, and offline (every script and style ships in the package). Open the printed URL.
    """
    import secrets

    from sluice.ui import serve as serve_ui
    from sluice.ui.app import is_loopback

    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
    shown = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"Sluice UI on {shown}  (Ctrl-C stops it)")
    try:
        serve_ui(store, artifact_root=artifacts, host=host, port=port, token=token)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


def main() -> None:
    """Entry point of the ``sluice`` console script: user errors print cleanly, without a traceback."""
    from sluice.errors import SluiceError

    try:
        cli(standalone_mode=True)
    except SluiceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
