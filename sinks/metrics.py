"""Prometheus metrics of the audit-log writer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["DUPLICATES", "FILES", "LAG", "ROWS", "WRITE_RETRIES"]

ROWS = Counter("preflog_sink_rows_written", "Rows written to the audit log, by table", ["table"])
FILES = Counter("preflog_sink_files_written", "Parquet files written, by table", ["table"])
DUPLICATES = Counter("preflog_sink_duplicates_skipped", "Records whose id was already in the log, by table", ["table"])
WRITE_RETRIES = Counter("preflog_sink_write_retries", "Storage writes retried after an error")
LAG = Gauge(
    "preflog_sink_consumer_lag",
    "Records of an assigned partition not yet in the audit log: the end of the partition minus the sink's committed "
    "offset (measured every sink.lag_every_s, 15 s)",
    ["table", "partition"],
)
