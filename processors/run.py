"""Start the join worker: check the topics, serve metrics, run Faust until stopped."""

from __future__ import annotations

import logging

from preflog.kafka import lag
from preflog.kafka.topics import ensure_topics, partition_counts
from preflog.settings import Settings

from . import health
from .exceptions import TopicMismatchError

__all__ = ["check_input_topics", "run_worker"]

log = logging.getLogger(__name__)


def check_input_topics(settings: Settings) -> int:
    """Partition count shared by the inference and feedback topics; raises naming both when they differ."""
    t = settings.topics
    counts = partition_counts(settings.kafka.client_config(), [t.inference, t.feedback])
    missing = [name for name in (t.inference, t.feedback) if name not in counts]
    if missing:
        raise TopicMismatchError(
            f"topic(s) {', '.join(missing)} do not exist on {settings.kafka.bootstrap_servers}; "
            "create them with `preflog topics create` (same partition count for both)"
        )
    if counts[t.inference] != counts[t.feedback]:
        raise TopicMismatchError(
            f"topic {t.feedback} has {counts[t.feedback]} partitions but {t.inference} has {counts[t.inference]}; "
            "both must match (co-partitioned on request_id): recreate one, or repartition it into a new topic "
            "and point PREFLOG_TOPICS__FEEDBACK or PREFLOG_TOPICS__INFERENCE at it"
        )
    return counts[t.inference]


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run the processor in this process until SIGINT/SIGTERM."""
    from faust import Worker

    from .app import create_app

    partitions = check_input_topics(settings)
    t = settings.topics
    outputs = [*t.outputs().values(), t.ticks]
    ensure_topics(settings.kafka.client_config(), outputs, partitions, t.replication_factor)
    p = settings.processor
    if p.metrics_port:
        from preflog.deploy.health import serve

        serve(p.metrics_host, p.metrics_port)
        log.warning("metrics and health on http://%s:%d/ (metrics, healthz, readyz)", p.metrics_host, p.metrics_port)
    lag.start(settings.kafka.client_config(), p.app_id, [t.inference, t.feedback])
    state_dir = settings.processor.state_dir or settings.data_dir / "processor"
    state_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, partitions)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (to spin on every record), so every
    # debug call in the send path builds a LogRecord: about 8% of the worker's CPU in a profile.
    worker.spinner = None
    health.install(app, worker.loop, t.inference, p.liveness_timeout_s)
    worker.execute_from_commandline()
