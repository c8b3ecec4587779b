"""Where files go: the local filesystem or any fsspec URL (s3:// through s3fs).

Files are created exclusively and never overwritten or deleted: writing a
name that exists with the same bytes is a no-op, with other bytes an
:class:`ImmutableFileError`. Locally a file appears atomically (temp file,
then a hard link that fails if the name exists); on S3 a PUT is atomic.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

from .exceptions import ImmutableFileError, StorageError

__all__ = ["Storage"]


class Storage:
    """One audit-log root, e.g. ``file:///data/audit`` or ``s3://bucket/audit``."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        import fsspec  # here, not at import: preflog.read_pairs stays light until it reads

        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def put(self, relative: str, data: bytes) -> bool:
        """Create ``relative`` with ``data``; False when it already held exactly these bytes."""
        path = self.path(relative)
        try:
            if self.local:
                return self._put_local(path, data)
            if self.fs.exists(path):
                return self._same(path, data)
            self.fs.pipe_file(path, data)
            if self.fs.info(path)["size"] != len(data):
                raise StorageError(f"{path}: size after upload does not match; retrying")
            return True
        except (ImmutableFileError, StorageError):
            raise
        except Exception as exc:  # network, permissions, throttling: the caller retries
            raise StorageError(f"writing {path}: {type(exc).__name__}: {exc}") from exc

    def _put_local(self, path: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        head, name = os.path.split(path)
        tmp = os.path.join(head, f".{name}.tmp-{uuid.uuid4().hex}")  # hidden: readers skip it if a crash leaves it
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return self._same(path, data)
        finally:
            os.unlink(tmp)

    def _same(self, path: str, data: bytes) -> bool:
        existing = self.fs.cat_file(path)
        if hashlib.sha256(existing).digest() != hashlib.sha256(data).digest():
            raise ImmutableFileError(
                f"{path} exists with different content ({len(existing)} bytes, new {len(data)}); "
                "the audit log is immutable: investigate before removing anything"
            )
        return False

    def problem(self) -> str | None:
        """Why the root cannot be written now (None: it can): a cheap check, for readiness probes."""
        try:
            if self.local:
                path = self.root
                while not os.path.exists(path) and os.path.dirname(path) != path:
                    path = os.path.dirname(path)
                if not os.path.isdir(path):
                    return f"{path} is not a directory"
                return None if os.access(path, os.W_OK) else f"{path} is not writable by this process"
            # a listing of the root's prefix, at most one key: what a writer scoped to that prefix may do
            bucket, _, prefix = self.root.partition("/")
            self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
            return None
        except PermissionError:
            return f"{self.url}: access denied (listing the prefix needs s3:ListBucket on it)"
        except FileNotFoundError:
            return f"{self.url}: the bucket does not exist"
        except Exception as exc:  # the class only: a message may carry an endpoint's credentials
            return f"{self.url}: {type(exc).__name__}"

    def read(self, relative: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(relative)))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Relative paths of every file under ``prefix`` (temp files left by a crash are skipped)."""
        base = self.path(prefix).rstrip("/")
        self.fs.invalidate_cache()  # listings must be fresh: they decide where a restarted writer resumes
        if not self.fs.exists(base):
            return
        for path in sorted(self.fs.find(base)):
            relative = path[len(self.root) + 1 :] if path.startswith(self.root) else path
            if ".tmp-" not in relative:
                yield relative
