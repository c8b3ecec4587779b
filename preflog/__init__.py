"""preflog: log preference pairs for AI alignment, from Kafka to an audit log of Parquet files."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .errors import ConfigError, PreflogError

try:
    __version__ = version("preflog")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["ConfigError", "PreflogError", "__version__", "read_pairs", "read_table", "stream_pairs"]


def __getattr__(name: str) -> Any:
    """``preflog.read_pairs`` / ``read_table`` / ``stream_pairs`` without importing pyarrow on ``import preflog``."""
    if name in ("read_pairs", "read_table"):
        from .sinks import read

        return getattr(read, name)
    if name == "stream_pairs":
        from .sinks.stream import stream_pairs

        return stream_pairs
    raise AttributeError(f"module 'preflog' has no attribute {name!r}")
