"""The root of every error preflog raises on purpose.

Catch :class:`PreflogError` to handle anything preflog reports; each
subclass names the thing that went wrong and, where there is one, the fix.
"""

from __future__ import annotations

__all__ = ["ConfigError", "PreflogError"]


class PreflogError(Exception):
    """Root of preflog's exceptions."""


class ConfigError(PreflogError):
    """Settings are missing, inconsistent or point at something unusable."""
