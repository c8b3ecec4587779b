"""Errors of the audit-log sink."""

from __future__ import annotations

from preflog.errors import PreflogError

__all__ = ["ImmutableFileError", "MissingLogError", "StorageError"]


class StorageError(PreflogError):
    """Object storage could not be reached or refused a write."""


class ImmutableFileError(PreflogError):
    """A file already exists with different content; the audit log never overwrites."""


class MissingLogError(PreflogError):
    """There is no audit log where one was asked for (a mistyped URL, or a sink that never wrote)."""
