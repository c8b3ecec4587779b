"""Strict decoding (codec.decode) beside fastavro's plain schemaless_reader of the same bodies, in one run.

    python benchmarks/decode_throughput.py [--requests 2000] [--rounds 40]

Encodes generated inference and feedback events in both framings, then
alternates the two decoders over the same records for ``--rounds`` rounds
(so a busy machine slows both alike) and prints records/s and the ratio.
The difference is the strict pre-pass of ``schemas/strict.py`` and the
codec's framing checks.
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

import fastavro

from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import ConfluentCodec, SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.registry import default_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    records: list[tuple[str, dict[str, Any]]] = []
    for e in generate(TrafficProfile(requests=args.requests, invalid=0.0)):
        if e.record is not None:
            name = "InferenceEvent" if e.event_type == "inference" else "FeedbackEvent"
            check = inference_record if name == "InferenceEvent" else feedback_record
            records.append((name, check(e.record)))
    store = default_store()
    for framing, codec, header in (
        ("single-object", SingleObjectCodec(), 10),
        ("confluent", ConfluentCodec("mock://bench"), 5),
    ):
        data = [(name, codec.encode(name, record, "t")) for name, record in records]
        # the writer schema objects the codec itself resolves from each framing, and the reader it decodes to
        pairs = {name: (_writer(codec, value), store.latest(name).reader) for name, value in data}

        def strict(data: list[tuple[str, bytes]] = data, codec: Any = codec) -> None:
            for name, value in data:
                codec.decode(value, name, "t")

        def plain(data: list[tuple[str, bytes]] = data, header: int = header, pairs: Any = pairs) -> None:
            for name, value in data:
                writer, reader = pairs[name]
                fastavro.schemaless_reader(io.BytesIO(value[header:]), writer, reader)

        times: dict[str, list[float]] = {"strict": [], "plain": []}
        runs: list[tuple[str, Callable[[], None]]] = [("plain", plain), ("strict", strict)]
        for _ in range(args.rounds):
            for label, run in runs:
                started = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - started)
        ratios = [p / s for p, s in zip(times["plain"], times["strict"], strict=True)]
        plain_rate, strict_rate = len(data) / min(times["plain"]), len(data) / min(times["strict"])
        print(
            f"{framing}: {len(data)} records, fastavro alone {plain_rate:,.0f}/s, codec.decode {strict_rate:,.0f}/s, "
            f"ratio {statistics.median(ratios):.2f} (median of {args.rounds} rounds)"
        )


def _writer(codec: Any, value: bytes) -> Any:
    if isinstance(codec, SingleObjectCodec):
        return codec.store.by_fingerprint(value[2:10]).reader  # type: ignore[union-attr]
    return codec._writer(struct.unpack(">I", value[1:5])[0], "benchmark")[1]


if __name__ == "__main__":
    main()
