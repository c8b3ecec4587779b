"""Prometheus metrics of the audit-log writer."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["DUPLICATES", "FILES", "ROWS", "WRITE_RETRIES"]

ROWS = Counter("preflog_sink_rows_written", "Rows written to the audit log, by table", ["table"])
FILES = Counter("preflog_sink_files_written", "Parquet files written, by table", ["table"])
DUPLICATES = Counter("preflog_sink_duplicates_skipped", "Records whose id was already in the log, by table", ["table"])
WRITE_RETRIES = Counter("preflog_sink_write_retries", "Storage writes retried after an error")
