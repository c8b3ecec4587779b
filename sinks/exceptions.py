"""Errors of the audit-log sink."""

from __future__ import annotations

from preflog.errors import PreflogError

__all__ = ["ImmutableFileError", "StorageError"]


class StorageError(PreflogError):
    """Object storage could not be reached or refused a write."""


class ImmutableFileError(PreflogError):
    """A file already exists with different content; the audit log never overwrites."""
