"""Prometheus metrics, served at ``/metrics``; docs/deploy.md ("Metrics") names every one.

Under gunicorn every worker is its own process, so the metrics live in prometheus-client's
multiprocess mode: ``mxconv serve`` (or gunicorn_conf.py, when gunicorn is run by hand) points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker starts, each process writes
its own files there, and a scrape of any worker sums them all. Without that variable (the Flask
test client, ``flask run``) the ordinary in-process registry is used.

Job metrics are not counted by the API processes, which never run jobs: they are read from the
job store at scrape time, by :class:`JobCollector`, so every API replica reports the same
figures whichever host the workers run on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from flask import Flask, Response, current_app, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger("mxconv.metrics")
# No *_created samples: multiprocess mode has none, so the two modes print the same names.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Flask's ``app.extensions`` key under which the job system puts its :class:`JobStats`.
JOB_STATS_KEY = "mxconv.job_stats"
#: Where api/jobs.py keeps the job store; its figures are used when no JobStats is given.
JOB_STORE_KEY = "mxconv.jobs"
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "mxconv_http_requests_total",
    "HTTP requests answered, by method, endpoint (the URL rule) and status code.",
    ["method", "endpoint", "status"],
)
REQUEST_SECONDS = Histogram(
    "mxconv_http_request_duration_seconds",
    "Time from request to response, by method, endpoint and status code.",
    ["method", "endpoint", "status"],
    buckets=_LATENCY_BUCKETS,
)
COMPUTE_SECONDS = Histogram(
    "mxconv_compute_seconds",
    "Time spent in the convolution math itself (MXNet, including the copy back to numpy), by endpoint.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
FLOPS = Counter(
    "mxconv_flops_total",
    "Floating-point operations served, as the compute endpoints report them in 'flops', by endpoint.",
    ["endpoint"],
)
FAST_PATHS = Counter(
    "mxconv_fast_path_total",
    "Times each fast path through a library's internals was taken (transport/compat.py).",
    ["path"],
)


#: ``g`` key of a label a view sets in place of its URL rule (``/v2/models/conv2d/infer`` for
#: ``/v2/models/<model_name>/infer``): only from a fixed set, so labels stay few.
ENDPOINT_LABEL = "mxconv_endpoint_label"


def endpoint_label() -> str:
    """The URL rule (``/v1/jobs/<job_id>``, not the path), so labels stay few; 'unmatched' for
    paths that match no route."""
    if not has_request_context():
        return "none"
    if ENDPOINT_LABEL in g:
        return str(g.get(ENDPOINT_LABEL))
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def observe_request(method: str, status: int, seconds: float) -> None:
    labels = (method, endpoint_label(), str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_SECONDS.labels(*labels).observe(seconds)


def observe_compute(seconds: float) -> None:
    COMPUTE_SECONDS.labels(endpoint_label()).observe(seconds)


def count_flops(flops: int) -> None:
    FLOPS.labels(endpoint_label()).inc(flops)


def count_fast_path(path: str) -> None:
    FAST_PATHS.labels(path).inc()


@runtime_checkable
class JobStats(Protocol):
    """What the metrics read from the job system: figures from its store. Without one given in
    ``app.extensions[JOB_STATS_KEY]``, :class:`StoreStats` derives them from the job store."""

    def counts_by_status(self) -> Mapping[str, int]:
        """Jobs in the store, by status (queued, running, succeeded, failed, cancelled)."""
        ...

    def queue_depth(self) -> int:
        """Job ids waiting in the queue."""
        ...

    def worker_heartbeats(self) -> Mapping[str, float]:
        """Each known worker's id and the Unix time of its latest heartbeat."""
        ...


class JobCollector:
    """Reads job figures from the store at scrape time. With no job system it still declares the
    metrics (no samples) and reports ``mxconv_job_store_up 0``."""

    def __init__(self, stats: JobStats | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("mxconv_jobs", "Jobs in the job store, by state.", labels=["state"])
        depth = GaugeMetricFamily("mxconv_job_queue_depth", "Job ids waiting in the queue.")
        beats = GaugeMetricFamily(
            "mxconv_job_worker_last_heartbeat_timestamp_seconds",
            "Unix time of each job worker's latest heartbeat.",
            labels=["worker"],
        )
        up = 0.0
        if self.stats is not None:
            try:
                counts = dict(self.stats.counts_by_status())
                queued = int(self.stats.queue_depth())
                heartbeats = dict(self.stats.worker_heartbeats())
            except Exception:  # a scrape must answer even when the store does not
                log.exception("could not read job metrics from the job store")
            else:
                up = 1.0
                for state in (*JOB_STATES, *sorted(set(counts) - set(JOB_STATES))):
                    jobs.add_metric([state], float(counts.get(state, 0)))
                depth.add_metric([], float(queued))
                for worker, at in sorted(heartbeats.items()):
                    beats.add_metric([worker], float(at))
        yield jobs
        yield depth
        yield beats
        store_up = GaugeMetricFamily(
            "mxconv_job_store_up", "1 if the job store answered this scrape, else 0 (or no job system)."
        )
        store_up.add_metric([], up)
        yield store_up


class StoreStats:
    """:class:`JobStats` from any job store (jobs/store.py's contract)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def counts_by_status(self) -> Mapping[str, int]:
        return {state: self.store.count(state) for state in JOB_STATES}

    def queue_depth(self) -> int:
        return int(self.store.count("queued"))  # the store is the queue

    def worker_heartbeats(self) -> Mapping[str, float]:
        own = getattr(self.store, "worker_heartbeats", None)
        if callable(own):  # the Redis store records every worker, idle ones too
            return own()  # type: ignore[no-any-return]
        # Otherwise the workers holding a job, by their latest write to it.
        running, _ = self.store.list(status="running", limit=500)
        return {r.worker: r.updated_at for r in running if r.worker}


def job_stats(app: Flask) -> JobStats | None:
    stats = app.extensions.get(JOB_STATS_KEY)
    if stats is None and app.extensions.get(JOB_STORE_KEY) is not None:
        stats = app.extensions[JOB_STATS_KEY] = StoreStats(app.extensions[JOB_STORE_KEY])
    return stats  # type: ignore[no-any-return]


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


def exposition(stats: JobStats | None) -> bytes:
    """The text a scrape returns: this service's metrics, summed over every process that wrote
    them, plus the job figures."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)  # type: ignore[arg-type]  # a registry is a collector too
    registry.register(JobCollector(stats))  # type: ignore[arg-type]
    return generate_latest(registry)


def register(app: Flask) -> None:
    def metrics_view() -> Any:
        return Response(exposition(job_stats(current_app)), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
