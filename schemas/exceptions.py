"""Errors of the event contract: unknown schemas, undecodable bytes, invalid events."""

from __future__ import annotations

from collections.abc import Sequence

from preflog.errors import PreflogError

__all__ = ["DecodeError", "SchemaError", "ValidationError"]


class SchemaError(PreflogError):
    """The schema files in ``schemas/avro`` are missing or inconsistent."""


class DecodeError(PreflogError):
    """Bytes that are not a record of the expected type in a known schema version."""


class ValidationError(PreflogError):
    """An event breaks the contract; ``problems`` lists every reason, field first."""

    def __init__(self, record_type: str, problems: Sequence[str]) -> None:
        self.record_type = record_type
        self.problems = list(problems)
        super().__init__(f"invalid {record_type}: " + "; ".join(self.problems))
