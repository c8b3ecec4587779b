"""The audit-log sink: output topics to immutable Parquet files, read back by offsets, ids and manifests."""
