"""Runners execute pipelines: the local runner, with caching, retries, resume and live progress."""

from sluice.runner.local import LocalRunner, RunResult, StepResult

__all__ = ["LocalRunner", "RunResult", "StepResult"]
