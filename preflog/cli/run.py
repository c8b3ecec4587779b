"""``preflog process`` and ``preflog sink``: the long-running services."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .console import override, settings_of

__all__ = ["process", "sink"]


def process(
    ctx: typer.Context,
    window: Annotated[float | None, typer.Option(help="Join window in seconds (default 3600).")] = None,
    grace: Annotated[float | None, typer.Option(help="Grace for out-of-order records, seconds (default 300).")] = None,
    score_margin: Annotated[
        float | None, typer.Option(help="SCORES pairs need a larger difference (default 0).")
    ] = None,
    score_mode: Annotated[str | None, typer.Option(help="all (default) or best-vs-worst.")] = None,
    store: Annotated[str | None, typer.Option(help="Table store: rocksdb:// (default) or memory://.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where table files live (default <data-dir>/processor).")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics, /healthz, /readyz (default 9464, 0 = off).")
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Address it binds (default 127.0.0.1; 0.0.0.0 in a container).")
    ] = None,
    app_id: Annotated[str | None, typer.Option(help="Consumer group / app id (default preflog-processor).")] = None,
    loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "warning",
) -> None:
    """Run the join worker: feedback joined to inference on request_id, emitting preference pairs.

    Outputs: pairs, unpaired signals (ratings, implicit), unmatched (with reason) and dead-letter topics.
    Run more workers with the same --app-id to split the partitions. Env: PREFLOG_PROCESSOR__*.
    """
    from ..processors.run import run_worker

    settings = settings_of(ctx)
    overrides = {
        "window_s": window,
        "grace_s": grace,
        "score_margin": score_margin,
        "score_mode": score_mode,
        "store": store,
        "state_dir": state_dir,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "app_id": app_id,
    }
    settings = override(settings, "processor", overrides)
    run_worker(settings, loglevel)


def sink(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="Audit log root: file:///path or s3://bucket/prefix.")] = None,
    partition_by: Annotated[
        list[str] | None, typer.Option(help="Extra partition column after dt=, e.g. model.name (repeatable).")
    ] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint (MinIO, moto...).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of /metrics, /healthz, /readyz (default 9465, 0 = off).")
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Address it binds (default 127.0.0.1; 0.0.0.0 in a container).")
    ] = None,
) -> None:
    """Write the output topics to the audit log: immutable Parquet files, offsets committed after each write.

    Layout: <url>/<table>/dt=YYYY-MM-DD/<topic>+<partition>+<first>-<last>.parquet, each with a
    manifest (rows, offsets, sha256) at <url>/_manifests/<same path>.json. Env: PREFLOG_SINK__*;
    S3 credentials from the AWS chain or PREFLOG_SINK__AWS_ACCESS_KEY_ID / PREFLOG_SINK__AWS_SECRET_ACCESS_KEY.
    """
    from ..sinks.run import run_sink

    settings = settings_of(ctx)
    overrides = {
        "url": url,
        "partition_by": partition_by,
        "s3_endpoint_url": s3_endpoint_url,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
    }
    settings = override(settings, "sink", overrides)
    run_sink(settings)
