"""Start the audit-log writer and stop it cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from preflog.settings import Settings

from .storage import Storage
from .writer import Sink

__all__ = ["run_sink"]

log = logging.getLogger(__name__)


def run_sink(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; what is buffered is written (and committed) before exiting."""
    url = settings.audit_url()
    storage = Storage(url, settings.sink.storage_options())
    if settings.sink.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.sink.metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.warning("writing the audit log to %s", url)
    Sink(settings, storage, settings.make_codec()).run(stop)
