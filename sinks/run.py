"""Start the audit-log writer and stop it cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from preflog.kafka import lag
from preflog.settings import Settings

from .storage import Storage
from .writer import Sink

__all__ = ["run_sink"]

log = logging.getLogger(__name__)


def run_sink(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; what is buffered is written (and committed) before exiting."""
    url = settings.audit_url()
    storage = Storage(url, settings.sink.storage_options())
    conf = settings.sink
    if conf.metrics_port:
        from preflog.deploy.health import serve

        serve(conf.metrics_host, conf.metrics_port)
        log.warning(
            "metrics and health on http://%s:%d/ (metrics, healthz, readyz)", conf.metrics_host, conf.metrics_port
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.warning("writing the audit log to %s", url)
    topics = settings.topics.all()
    lag.start(settings.kafka.client_config(), conf.group_id, [topics[table] for table in conf.tables])
    sink = Sink(settings, storage, settings.make_codec())
    sink.health.install()
    sink.run(stop)
