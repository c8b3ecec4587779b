"""``preflog serve``: the HTTP ingestion API (docs/http-api.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .console import out, override, settings_of

__all__ = ["serve"]


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
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        ingest.close()
        producer.close()
        sock.close()
