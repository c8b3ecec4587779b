"""What one fault-suite run does (:class:`Plan`), the short and the full plan, and the suite's log line."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

__all__ = ["FULL", "SHORT", "SHORT_BAD", "Plan", "log"]

SHORT_BAD = [
    "garbage bytes (feedback)",
    "truncated Avro (inference)",
    "Confluent framing where single-object is expected",
    "key does not match request_id (feedback)",
    "enum index -1 (source type)",
    "candidate index that does not exist",
    "NaN score",
    "event time in year 9999 (feedback)",
    "duplicate inference id with other content",
]


@dataclass
class Plan:
    """What one run does."""

    name: str
    requests: int
    rate: float  # requests per second (event time and wall time alike)
    partitions: int = 3
    processor_kills: int = 3
    sink_kills: int = 3
    broker_restarts: int = 0
    broker_cuts: list[tuple[str, float]] = field(default_factory=lambda: [("refuse", 6.0)])
    s3_outages: list[tuple[str, float]] = field(default_factory=list)
    bad_kinds: list[str] | None = None  # None: every kind
    broker_storage: str = "s3"  # s3 (survives a broker restart) or memory
    window_s: float = 60.0
    grace_s: float = 10.0
    idle_timeout_s: float = 30.0
    store: str = "rocksdb://"
    tick_interval_s: float = 0.5
    sink_max_rows: int = 20
    converge_timeout_s: float = 90.0
    stall_s: float = 25.0
    seed: int = 11
    snapshot: bool = True  # run the services from a copy of the code taken at the start
    privacy: bool = False  # the SDK seals the generated traffic (keys on a keys topic); users erased midway
    erase_users: int = 2  # how many generated users the privacy run erases midway


SHORT = Plan(
    "short", requests=150, rate=4.5, bad_kinds=SHORT_BAD, broker_storage="memory", converge_timeout_s=120, stall_s=40
)
FULL = Plan(  # sized for Tansu's S3 engine on moto, which fetches a few hundred single-record batches per second
    "full",
    requests=450,
    rate=1.5,
    partitions=3,
    tick_interval_s=2.0,
    processor_kills=12,
    sink_kills=12,
    broker_restarts=1,
    broker_cuts=[("refuse", 15.0), ("blackhole", 15.0)],
    s3_outages=[("blackhole", 30.0), ("refuse", 30.0)],
    converge_timeout_s=420,
    stall_s=150,
)


def log(message: str) -> None:
    """Prints ``message`` with the time of day to stderr (the suite's progress, apart from its report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
