"""The analytics report over the audit log's preference pairs; :mod:`.stats` and :mod:`.ranking` hold its statistics."""

from __future__ import annotations

__all__: list[str] = []
