"""What one fault-suite run does (:class:`Plan`), the short and the full plan, and the suite's log line."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field

__all__ = ["FULL", "SHORT", "SHORT_BAD", "Plan", "log", "with_api"]

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
    # --api (fault_api.py): the valid generated traffic goes through `preflog serve`, posted by HTTP clients
    api: bool = False
    api_clients: int = 4  # client threads posting batches at once
    api_batch_max: int = 20  # events per request: 1..this
    api_kills: int = 1  # kill -9 of `preflog serve` (and a restart on its port) while the clients send
    api_rate: float = 4.0  # the API's events/s per key (api.rate; a key sends ~3/s): catching up meets 429s
    api_burst: int = 20  # api.burst (at least api_batch_max: a batch is never refused for good)
    api_ack_timeout_s: float = 3.0  # api.ack_timeout_s: shorter than the cuts, so they bring 503s
    api_give_up_s: float = 180.0  # a client stops retrying a batch this long after its first attempt
    api_abandon: float = 0.1  # share of batches whose client gives up after its first answer other than 202


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


def with_api(plan: Plan) -> Plan:
    """A copy of ``plan`` with the traffic through the HTTP API (``--api``).

    The plan's broker faults then come while the clients send (``fault_api.broker_faults``); a blackhole
    longer than the API's ack timeout is added when the plan has none (the short plan has only a refusal),
    so that records sent before the cut are acknowledged late, after their request was answered 503.
    """
    out = copy.deepcopy(plan)
    out.api = True
    if not any(mode == "blackhole" for mode, _ in out.broker_cuts):
        out.broker_cuts.append(("blackhole", 8.0))
    return out


def log(message: str) -> None:
    """Prints ``message`` with the time of day to stderr (the suite's progress, apart from its report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
