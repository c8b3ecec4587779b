"""Settings of the HTTP ingestion API (``preflog serve``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["ApiSettings"]


class ApiSettings(BaseModel):
    """``preflog serve``: where it listens, its keys, and the limits that keep it and Kafka safe."""

    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 for every interface")
    port: int = Field(8787, ge=0, le=65535, description="port to listen on; 0: a free one, written to port_file")
    keys_file: Path | None = Field(
        None, description="the API keys (preflog keys ...); default <data_dir>/api/keys.json"
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="larger request bodies are refused with 413 before they are read whole"
    )
    max_events: int = Field(1000, ge=1, description="events one request may carry; more is a 413")
    rate: float = Field(2000.0, gt=0, description="events per second each key may send on average (429 beyond)")
    burst: int = Field(4000, ge=1, description="events a key may send at once after a pause")
    ack_timeout_s: float = Field(
        10.0, gt=0, description="longest a request waits for Kafka's acknowledgement before a 503 (retry: harmless)"
    )
    max_in_flight: int = Field(
        20_000, ge=1, description="events sent and not yet acknowledged, over all requests; beyond it a 503 at once"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections the service takes at once; beyond it new ones get 503"
    )
