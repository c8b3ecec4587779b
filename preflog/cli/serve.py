"""``preflog serve``: the HTTP ingestion API (docs/http-api.md)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from .console import out, override, settings_of

if TYPE_CHECKING:
    import uvicorn

__all__ = ["serve"]


@contextmanager
def _stopped_by_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGTERM and SIGINT stop ``server`` gracefully, and end the command (exit 0) after its cleanup.

    uvicorn (>= 0.29) handles both while it runs, then restores the handlers it found and raises the
    signal it caught again; with the default ones in place that killed the process (exit 143) before
    the producer was flushed and closed. Ours are the ones it finds: the raise again only asks the
    server to stop, which it has done. A signal before uvicorn's handlers are in, or after they are
    out, stops it the same way (not at all past the server's end: the cleanup runs to its end).
    """
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(sig: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1; 0.0.0.0: all).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8787; 0: a free one, see --port-file).")] = None,
    port_file: Annotated[Path | None, typer.Option(help="Write the port listened on to this file.")] = None,
    keys_file: Annotated[Path | None, typer.Option(help="The API keys (default <data-dir>/api/keys.json).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log each request's method, path and status.")] = False,
) -> None:
    """Run the HTTP ingestion API: inference and feedback events as JSON, produced to Kafka.

    POST /v1/inference and /v1/feedback take one event (an object) or a batch (an array), with
    Authorization: Bearer pfk_... from `preflog keys create`. Events are validated by the SDK's own
    rules (422 lists every invalid event; nothing is sent), the key's tenant is stamped on each, and
    the answer 202 comes once Kafka has acknowledged every record. Limits: api.max_body_bytes (413),
    api.rate and api.burst per key (429), api.max_in_flight and api.ack_timeout_s (503 when Kafka
    lags; retrying the same ids is harmless). The OpenAPI description is at /openapi.json, metrics at
    /metrics, the browser snippet at /preflog-feedback.js. Env: PREFLOG_API__*.
    Example: preflog serve --port 8787
    """
    import uvicorn

    from ..api.app import LiveKeys, listen, make_app
    from ..api.ingest import Ingest
    from ..api.limits import RateLimits
    from ..deploy.health import HEALTH, Verdict
    from ..producers.client import PreflogProducer

    settings = override(settings_of(ctx), "api", {"host": host, "port": port, "keys_file": keys_file})
    api = settings.api
    keys = LiveKeys(api.keys_file or Path(settings.data_dir) / "api" / "keys.json")
    live = [k for k in keys.current().keys.values() if not k.revoked]
    sock = listen(api.host, api.port)
    bound = sock.getsockname()[1]
    if port_file is not None:
        tmp = port_file.with_name(f".{port_file.name}.tmp")
        tmp.write_text(f"{bound}\n", encoding="ascii")
        tmp.replace(port_file)
    producer = PreflogProducer.from_settings(settings)
    ingest = Ingest(producer, RateLimits(api.rate, api.burst), api.max_events, api.ack_timeout_s, api.max_in_flight)
    out.print(f"preflog API on http://{api.host}:{bound} (OpenAPI: /openapi.json); keys: {keys.path}", soft_wrap=True)
    if not live:
        out.print(f"no API keys yet: make one with preflog --data-dir {settings.data_dir} keys create --tenant NAME")
    config = uvicorn.Config(
        make_app(ingest, keys, api.max_body_bytes),
        log_level="info",
        access_log=access_log,
        lifespan="off",
        limit_concurrency=api.max_connections,
    )
    server = uvicorn.Server(config)
    # the same answers on the port `preflog up`'s launcher serves metrics on (deploy/health.py)
    HEALTH.install(lambda: Verdict(True, "serving HTTP"), lambda: Verdict(*ingest.readiness()))
    with _stopped_by_signals(server):
        try:
            server.run(sockets=[sock])
        finally:
            ingest.close()
            undelivered = producer.close()
            sock.close()
            out.print(f"preflog API stopped; producer closed ({undelivered} records undelivered)")
