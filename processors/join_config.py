"""The join's window, pairing and size settings (:class:`JoinConfig`), in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .pairs import ScoreMode

if TYPE_CHECKING:
    from preflog.settings import Settings

__all__ = ["JoinConfig"]


@dataclass(frozen=True)
class JoinConfig:
    """Window and pairing settings (milliseconds)."""

    window_ms: int = 3_600_000
    grace_ms: int = 300_000
    late_retention_ms: int = 86_400_000
    idle_timeout_ms: int = 30_000
    score_margin: float = 0.0
    score_mode: ScoreMode = "all"
    max_input_bytes: int = 600_000
    max_output_bytes: int = 900_000
    max_event_time_skew_ms: int = 3_600_000
    max_entry_bytes: int = 950_000

    @classmethod
    def from_settings(cls, settings: Settings) -> JoinConfig:
        """The join settings of ``settings.processor``, in milliseconds."""
        p = settings.processor
        return cls(
            window_ms=int(p.window_s * 1000),
            grace_ms=int(p.grace_s * 1000),
            late_retention_ms=int(p.late_retention_s * 1000),
            idle_timeout_ms=int(p.idle_timeout_s * 1000),
            score_margin=p.score_margin,
            score_mode=p.score_mode,
            max_input_bytes=p.max_input_bytes,
            max_output_bytes=p.max_output_bytes,
            max_event_time_skew_ms=int(p.max_event_time_skew_s * 1000),
            max_entry_bytes=p.max_state_entry_bytes,
        )
