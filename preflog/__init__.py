"""preflog: log preference pairs for AI alignment, from Kafka to an audit log of Parquet files."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import ConfigError, PreflogError

try:
    __version__ = version("preflog")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["ConfigError", "PreflogError", "__version__"]
