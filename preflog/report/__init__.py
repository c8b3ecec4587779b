"""The analytics report over the audit log's preference pairs; :mod:`preflog.report.stats` holds its statistics."""

from __future__ import annotations

__all__: list[str] = []
