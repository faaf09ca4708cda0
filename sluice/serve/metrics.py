"""Prometheus metrics of the server: requests, errors, latency, batch sizes, by model and version.

With several worker processes each process writes its samples to
``$PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them (prometheus-client's
multiprocess mode); with one process the registry is in memory.

Example::

    metrics = ServerMetrics()
    metrics.observe_request("ctr", "3", "tfserving", 200, 0.0021)
    metrics.render()           # (body bytes, content type) for GET /metrics
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    """The server's Prometheus metrics; see the module docstring."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = None if self.multiprocess else CollectorRegistry()
        kw = {"registry": registry} if registry is not None else {}
        self.registry = registry
        labels = ["model", "version", "protocol", "code"]
        self.requests = Counter("sluice_requests_total", "Prediction requests by model, version, protocol "
                                "and HTTP status", labels, **kw)
        self.errors = Counter("sluice_request_errors_total", "Prediction requests answered with an error "
                              "(4xx or 5xx)", labels, **kw)
        self.latency = Histogram("sluice_request_latency_seconds", "Prediction request latency, "
                                 "body read to response", ["model", "version", "protocol"],
                                 buckets=LATENCY_BUCKETS, **kw)
        self.rows = Counter("sluice_predicted_rows_total", "Rows predicted", ["model", "version"], **kw)
        self.batch_size = Histogram("sluice_batch_size_rows", "Rows per model invocation (after micro-batching)",
                                    ["model", "version"], buckets=BATCH_BUCKETS, **kw)
        self.load_failures = Counter("sluice_model_load_failures_total", "Model versions that failed to load",
                                     ["model", "version"], **kw)
        gauge_kw = dict(kw, multiprocess_mode="livemax") if self.multiprocess else kw
        self.loaded = Gauge("sluice_model_version_loaded", "1 while a model version is loaded",
                            ["model", "version"], **gauge_kw)

    def observe_request(self, model: str, version: str, protocol: str, code: int, seconds: float) -> None:
        self.requests.labels(model, version, protocol, str(code)).inc()
        if code >= 400:
            self.errors.labels(model, version, protocol, str(code)).inc()
        self.latency.labels(model, version, protocol).observe(seconds)

    def observe_batch(self, model: str, version: str, rows: int) -> None:
        self.batch_size.labels(model, version).observe(rows)
        self.rows.labels(model, version).inc(rows)

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
