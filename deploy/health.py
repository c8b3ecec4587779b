"""A service's HTTP port: Prometheus ``/metrics``, liveness ``/healthz`` and readiness ``/readyz``.

Both probes answer 200 or 503 with a JSON body ``{"status": "ok"|"fail", "reason": "..."}``;
the reason names ids and states, never record contents.

* **Liveness** (restart me if this fails): the service's loop answers and its
  consumer is alive. A process still starting (checking topics, opening state)
  is live.
* **Readiness** (send me traffic / count me as up): live, and the service does
  its job: the processor has recovered its state and owns partitions; the sink
  owns partitions and can reach its storage.

What is checked is installed by the running service (:meth:`Health.install`)
into the process-wide :data:`HEALTH`, like metrics live in the process-wide
registry: the server (:func:`serve`) may be started before the service, by
``preflog process``/``sink`` or by ``preflog up``'s launcher
(:mod:`.service`).

The server binds ``metrics_host`` (``127.0.0.1`` by default: this machine
only). In a container set it to ``0.0.0.0`` so the scheduler's probes and a
Prometheus scraper reach it; it serves no record data, only counters and
these two answers, but put it on a network only your cluster reaches.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["HEALTH", "Health", "Verdict", "serve"]


@dataclass(frozen=True)
class Verdict:
    """One probe's answer."""

    ok: bool
    reason: str


Check = Callable[[], Verdict]


class Health:
    """The liveness and readiness checks of this process's service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: Check = lambda: Verdict(True, "starting")
        self._ready: Check = lambda: Verdict(False, "starting")

    def install(self, live: Check, ready: Check) -> None:
        """Make ``live`` and ``ready`` this process's checks (called by the service once it runs)."""
        with self._lock:
            self._live, self._ready = live, ready

    def live(self) -> Verdict:
        with self._lock:
            check = self._live
        return _safely(check)

    def ready(self) -> Verdict:
        """Ready only when live too: a service whose consumer died does its job no more."""
        alive = self.live()
        if not alive.ok:
            return alive
        with self._lock:
            check = self._ready
        return _safely(check)


def _safely(check: Check) -> Verdict:
    try:
        return check()
    except Exception as exc:  # a probe that raises is a failed probe, with its class as the reason
        return Verdict(False, f"health check raised {type(exc).__name__}")


HEALTH = Health()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds; they are not worth a log line each."""


def _app(health: Health) -> Callable[..., Iterable[bytes]]:
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        verdict = health.live() if path == "/healthz" else health.ready()
        body = json.dumps({"status": "ok" if verdict.ok else "fail", "reason": verdict.reason}).encode()
        status = "200 OK" if verdict.ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve(host: str, port: int, health: Health = HEALTH) -> tuple[WSGIServer, int]:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (0: a free port) from a daemon thread.

    Returns:
        The server and the port it bound.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("_HealthServer", (_Server,), {"address_family": family})
    server: WSGIServer = make_server(host, port, _app(health), server_class, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="preflog-health", daemon=True).start()
    return server, int(server.server_port)
