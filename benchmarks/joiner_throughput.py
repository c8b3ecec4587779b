"""The pure Joiner's throughput (events/s, dict state, no Kafka) beside fastavro decoding the same records.

    python benchmarks/joiner_throughput.py [--requests 12000] [--rate 2] [--rounds 3] [--json PATH]

Generated traffic (``preflog.producers.generator``) is validated and encoded
once with the default codec (single-object), spread over four partitions by
request_id, then fed through a fresh :class:`~preflog.processors.join.Joiner`
with dict state in each round; only the ``process`` calls are timed. With
``--rate 2`` requests per second of event time the run spans more than the
window and grace, so expiry (NO_FEEDBACK, LATE markers) is part of it.
Records go in batches of 500 whose outputs are dropped after each, as in the
worker (with every output kept alive the collector's full passes took 0.20 s
of a 1.3 s round; 0.12 s in batches). The
reference row decodes the same bodies with ``fastavro.schemaless_reader``
alone (no strict pre-pass, no validation, no join). A second Joiner row
takes the same records in the Confluent wire format (an in-process ``mock://``
Schema Registry). Each figure is the best
of ``--rounds`` rounds; the two are alternated so a busy machine slows both.
"""

from __future__ import annotations

import argparse
import io
import time
import zlib
from collections import Counter
from typing import Any

import fastavro
from report_rows import Row, write_rows

from preflog.processors.join import JoinConfig, Joiner
from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import Codec, ConfluentCodec, SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record

GROUP = "joiner"
TARGET = 40_000
PARTITIONS = 4
#: records per batch (the worker's take_events(500, ...)); outputs are dropped after each batch
BATCH = 500
#: topic, partition, offset, key, value, timestamp_ms
Input = tuple[str, int, int, bytes, bytes, int]


def inputs(requests: int, rate: float, invalid: float) -> list[Input]:
    """Generated traffic, encoded once, in send order, with per-partition offsets."""
    codec = SingleObjectCodec()
    offsets: Counter[tuple[str, int]] = Counter()
    out: list[Input] = []
    for e in generate(TrafficProfile(requests=requests, rate=rate, invalid=invalid)):
        topic = "inference" if e.event_type == "inference" else "feedback"
        if e.record is None:
            value, ts = e.raw or b"", 0
        elif topic == "inference":
            record = inference_record(e.record)
            value, ts = codec.encode("InferenceEvent", record), int(record["event_time"].timestamp() * 1000)
        else:
            record = feedback_record(e.record)
            value, ts = codec.encode("FeedbackEvent", record), int(record["event_time"].timestamp() * 1000)
        partition = zlib.crc32(e.key.encode()) % PARTITIONS
        out.append((topic, partition, offsets[topic, partition], e.key.encode(), value, ts or -1))
        offsets[topic, partition] += 1
    return out


def confluent(data: list[Input], codec: ConfluentCodec) -> list[Input]:
    """``data`` framed for a Schema Registry (``codec``) instead of single-object encoded."""
    soe = SingleObjectCodec()
    out = []
    for topic, partition, offset, key, value, ts in data:
        name = "InferenceEvent" if topic == "inference" else "FeedbackEvent"
        out.append((topic, partition, offset, key, codec.encode(name, soe.decode(value, name), topic), ts))
    return out


def join_once(data: list[Input], wall: int, codec: Codec | None = None) -> tuple[float, Counter[str]]:
    """Seconds to join ``data`` with a fresh Joiner, and the roles it emitted.

    Records go in batches of ``BATCH``, whose outputs are counted (untimed) and dropped after each, as the
    worker hands a batch's outputs to its checkpoint and lets them go.
    """
    codec = codec or SingleObjectCodec()
    joiner = Joiner(JoinConfig(), codec, {}, "inference", "feedback", wall_ms=lambda: wall)
    process = joiner.process
    seconds = 0.0
    roles: Counter[str] = Counter()
    for first in range(0, len(data), BATCH):
        batch = data[first : first + BATCH]
        started = time.perf_counter()
        emitted = [process(*record) for record in batch]
        seconds += time.perf_counter() - started
        roles.update(e.role for out in emitted for e in out)
    return seconds, roles


def decode_once(data: list[Input], codec: SingleObjectCodec) -> float:
    """Seconds for fastavro alone to decode the bodies of ``data`` (writer schema as the codec resolves it)."""
    bodies: list[tuple[bytes, Any, Any]] = []
    for topic, _, _, _, value, _ in data:
        name = "InferenceEvent" if topic == "inference" else "FeedbackEvent"
        writer = codec.store.by_fingerprint(value[2:10])
        if writer is not None:
            bodies.append((value[10:], writer.reader, codec.store.latest(name).reader))
    started = time.perf_counter()
    for body, writer_schema, reader_schema in bodies:
        fastavro.schemaless_reader(io.BytesIO(body), writer_schema, reader_schema)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12_000)
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second of event time")
    parser.add_argument("--invalid", type=float, default=0.0, help="share of invalid feedback (dead letters)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the rows here (benchmarks/run_all.py)")
    args = parser.parse_args()
    data = inputs(args.requests, args.rate, args.invalid)
    wall = max(ts for *_, ts in data) + 1  # a fixed clock after every event: no skew, no idle fallback
    codec = SingleObjectCodec()
    registry = ConfluentCodec("mock://joiner-throughput")
    framed = confluent(data, registry)
    times: dict[str, list[float]] = {"decode": [], "soe": [], "confluent": []}
    roles: Counter[str] = Counter()
    for _ in range(args.rounds):
        seconds, roles = join_once(data, wall)
        times["soe"].append(seconds)
        times["confluent"].append(join_once(framed, wall, registry)[0])
        times["decode"].append(decode_once(data, codec))
    rate = {what: len(data) / min(seconds) for what, seconds in times.items()}
    print(f"{len(data)} events ({args.requests} requests), outputs {dict(sorted(roles.items()))}")
    print(f"fastavro schemaless decode (reference): {rate['decode']:,.0f} events/s")
    for what, label in (("soe", "Joiner (dict state)"), ("confluent", "Joiner (dict state, Confluent framing)")):
        print(
            f"{label}: {rate[what]:,.0f} events/s, {rate[what] / rate['decode']:.2f}x fastavro decode "
            f"(target >= {TARGET:,}; best of {args.rounds} rounds)"
        )
    if args.json:
        reference = "fastavro schemaless decode"
        rows: list[Row] = [
            Row(
                group=GROUP,
                what=reference,
                figure=round(rate["decode"]),
                unit="events/s",
                baseline=None,
                ratio=None,
                target=None,
            ),
        ]
        for what, label in (("soe", "Joiner, dict state"), ("confluent", "Joiner, dict state, Confluent framing")):
            rows.append(
                Row(
                    group=GROUP,
                    what=label,
                    figure=round(rate[what]),
                    unit="events/s",
                    baseline=reference,
                    ratio=round(rate[what] / rate["decode"], 3),
                    target=f">= {TARGET}",
                )
            )
        write_rows(args.json, rows)


if __name__ == "__main__":
    main()
