"""The sha256 of a build's files and of the audit-log files it read (read in 1 MB blocks, never held whole)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any

from preflog.sinks.storage import Storage

__all__ = ["file_size", "sha256_file", "sha256_source", "source_entry"]


def _sha256(f: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a local file, hex."""
    with path.open("rb") as f:
        return _sha256(f)


def sha256_source(storage: Storage, relative: str) -> str:
    """The sha256 of a file of the audit log, hex.

    Raises:
        FileNotFoundError: the log no longer has it.
    """
    with storage.fs.open(storage.path(relative), "rb") as f:
        return _sha256(f)


def file_size(storage: Storage, relative: str) -> int:
    """The size in bytes of a file of the audit log."""
    return int(storage.fs.info(storage.path(relative))["size"])


def source_entry(storage: Storage, relative: str) -> dict[str, Any]:
    """A source file's manifest entry: its path, sha256 and size."""
    return {"path": relative, "sha256": sha256_source(storage, relative), "size": file_size(storage, relative)}
