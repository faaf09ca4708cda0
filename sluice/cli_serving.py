"""The serving commands of the CLI: ``sluice serve``, ``sluice models ...``, ``sluice validate-serving``.

Thin: option parsing here, the logic in :mod:`sluice.serve` and :mod:`sluice.registry.release`;
heavy imports happen inside the commands.
"""

from __future__ import annotations

from typing import Any

import click

STORE_HELP = ("Metadata store: a SQLite file path or a SQLAlchemy URL. Default: $SLUICE_STORE or "
              ".sluice/metadata.db.")


def _store(url: str | None) -> Any:
    from sluice.metadata import MetadataStore

    return MetadataStore.open(url)


@click.command()
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False),
              help="A Pusher destination: <dir>/<model name>/<version>/ (or one model's folder).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON server config: models, version policies, labels, traffic splits "
                   "(see sluice.serve.config).")
@click.option("--host", default=None, help="Bind address [default: 127.0.0.1]; any other needs tokens.")
@click.option("--port", default=None, type=int, help="[default: 8500]")
@click.option("--workers", default=None, type=int, help="Worker processes [default: 1].")
@click.option("--poll-seconds", default=None, type=float,
              help="Re-scan model folders and re-read labels this often [default: 2; 0: never].")
@click.option("--latest", default=None, type=int, help="Version policy: load the newest N versions [default: 1].")
@click.option("--store", default=None, envvar="SLUICE_SERVE_STORE",
              help="Metadata store whose aliases (production, staging) become labels; the server follows them.")
@click.option("--max-batch-size", default=None, type=int, help="Micro-batching: most rows per model call [256].")
@click.option("--max-wait-ms", default=None, type=float, help="Micro-batching: longest wait for a batch to fill [2].")
@click.option("--max-body-bytes", default=None, type=int, help="Request size limit [16 MiB].")
@click.option("--auth-token-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Bearer tokens, one a line (also $SLUICE_SERVE_TOKENS, comma separated).")
@click.option("--request-log", "request_log_dir", default=None, type=click.Path(file_okay=False),
              help="Log served rows and predictions to Parquet under this folder.")
@click.option("--request-log-sample", default=None, type=float, help="Fraction of requests logged [1.0].")
@click.option("--no-access-log", is_flag=True, help="Do not write the JSON access log line per request.")
def serve(model_dir: str | None, config_file: str | None, host: str | None, port: int | None,
          workers: int | None, poll_seconds: float | None, latest: int | None, store: str | None,
          max_batch_size: int | None, max_wait_ms: float | None, max_body_bytes: int | None,
          auth_token_file: str | None, request_log_dir: str | None, request_log_sample: float | None,
          no_access_log: bool) -> None:
    """Serve models over HTTP: TF Serving REST, Open Inference Protocol (V2), MLflow /invocations.

    \b
    sluice serve --model-dir serving
    curl -d '{"instances": [{"I1": 3, "C1": "c1_000042"}]}' \\
         http://127.0.0.1:8500/v1/models/ctr:predict
    """
    from sluice.errors import SluiceError
    from sluice.serve.config import ServeConfig
    from sluice.serve.server import run_server

    overrides = {"host": host, "port": port, "workers": workers, "store": store, "max_batch_size": max_batch_size,
                 "max_wait_ms": max_wait_ms, "max_body_bytes": max_body_bytes, "auth_token_file": auth_token_file,
                 "request_log_dir": request_log_dir, "request_log_sample": request_log_sample}
    if poll_seconds is not None:
        overrides["poll_seconds"] = poll_seconds or None
    if no_access_log:
        overrides["access_log"] = False
    if config_file:
        config = ServeConfig.load(config_file, **overrides)
    elif model_dir:
        config = ServeConfig.from_model_dir(model_dir, **{k: v for k, v in overrides.items() if v is not None})
    else:
        raise SluiceError("give --model-dir DIR or --config FILE")
    if latest is not None:
        for m in config.models:
            m.latest, m.specific = latest, None
    run_server(config)


@click.group()
def models() -> None:
    """The model registry: versions, aliases (production, staging), release and rollback.

    \b
    sluice models list
    sluice models show ctr
    sluice models promote ctr 3 --alias production --note "beat v2 on AUC"
    sluice models rollback ctr                 # production goes back to the version it had before
    """


@models.command("list")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
def models_list(store: str | None) -> None:
    """Every model: versions, aliases, newest version."""
    from sluice.registry.release import models_table

    click.echo(models_table(_store(store)))


@models.command("show")
@click.argument("name")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
def models_show(name: str, store: str | None) -> None:
    """One model: each version with its lineage (data, transform, run) and the alias history."""
    from sluice.registry.release import show_model

    click.echo(show_model(_store(store), name))


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.option("--note", default="", help="Why (kept in the audit trail).")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
def models_promote(name: str, version: int, alias: str, note: str, store: str | None) -> None:
    """Point ALIAS at VERSION (servers following the store pick it up on their next poll)."""
    from sluice.registry.release import promote

    previous = promote(_store(store), name, version, alias, note=note)
    was = f" (was v{previous})" if previous is not None else ""
    click.echo(f"{name} {alias} -> v{version}{was}")


@models.command("rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@click.option("--note", default="", help="Why (kept in the audit trail).")
@click.option("--store", envvar="SLUICE_STORE", help=STORE_HELP)
def models_rollback(name: str, alias: str, note: str, store: str | None) -> None:
    """Move ALIAS back to the version it pointed at before its current one."""
    from sluice.registry.release import rollback

    current, target = rollback(_store(store), name, alias, note=note)
    click.echo(f"{name} {alias} -> v{target} (rolled back from v{current})")


@click.command("validate-serving")
@click.option("--log-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Request log of one model: <request log>/<model name>.")
@click.option("--statistics", "statistics_path", required=True, type=click.Path(exists=True),
              help="Training statistics: a StatisticsGen output folder or its statistics JSON file.")
@click.option("--schema", "schema_path", required=True, type=click.Path(exists=True),
              help="Schema (schema.yaml, or a SchemaGen output folder) with skew/drift thresholds.")
@click.option("--split", default="train", show_default=True, help="Training split to compare with.")
@click.option("--skew-threshold", default=None, type=float,
              help="Use this skew threshold for every feature (else the schema's).")
@click.option("--previous-log-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="An earlier window of the request log: report drift from it too.")
@click.option("--json", "as_json", is_flag=True, help="Print the anomalies as JSON.")
def validate_serving(log_dir: str, statistics_path: str, schema_path: str, split: str,
                     skew_threshold: float | None, previous_log_dir: str | None, as_json: bool) -> None:
    """Compare logged serving data with the training statistics: skew, drift and schema anomalies.

    Exits with status 1 when an error-level anomaly is found.
    """
    import json
    import sys

    from sluice.serve.skew import validate_serving_log

    anomalies = validate_serving_log(log_dir, statistics_path, schema_path, split=split,
                                     skew_threshold=skew_threshold, previous_log_dir=previous_log_dir)
    if as_json:
        click.echo(json.dumps(anomalies.to_dict(), indent=1, default=str))
    else:
        click.echo(anomalies.summary())
    if anomalies.has_errors:
        sys.exit(1)
