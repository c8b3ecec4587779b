"""A 40-turn conversation sent by reference vs in full: bytes on the wire, join throughput, read-time cost.

    python benchmarks/conversation_reference.py [--conversations 40] [--turns 40] [--rounds 3]

Each conversation's user messages and answers are production-size texts (0.5-2 kB,
:class:`realistic_text.TextMaker`), two candidates a turn, the client continuing with one. Sent in full, turn
``k`` carries the whole transcript (``k`` questions and ``k - 1`` answers); by reference, only its own question
and the previous turn's id. Every fifth turn is judged. Figures:

* bytes on the wire: the encoded InferenceEvent records (single-object framing) per conversation and in all;
* join throughput: a fresh :class:`~preflog.processors.join.Joiner` with dict state over the encoded records
  (inferences and feedback, one partition), events/s, and the bytes it emits (pairs and turns tables);
* read time: ``read_pairs`` of a log of those pairs and turns with histories resolved vs as sent.

Each time is the best of ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from realistic_text import TextMaker

from preflog.processors.join import JoinConfig, Joiner
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.read import read_pairs
from preflog.sinks.storage import Storage

SIZES = (500, 2000)
JUDGED_EVERY = 5
#: topic, partition, offset, key, value, timestamp_ms
Input = tuple[str, int, int, bytes, bytes, int]


def conversations(n: int, turns: int, by_reference: bool) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Validated (inference, feedback or None) of ``n`` conversations of ``turns`` turns, in send order."""
    maker = TextMaker(seed=7)
    questions = maker.texts(0, np.arange(n * turns), SIZES).to_pylist()
    answers = maker.texts(1, np.arange(2 * n * turns), SIZES).to_pylist()
    t0 = 1_790_000_000_000
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for c in range(n):
        transcript: list[dict[str, Any]] = []
        previous, conv = None, f"conv-{c}"
        for k in range(turns):
            i = c * turns + k
            delta = [{"role": "user", "content": questions[i]}]
            transcript = transcript + delta
            conversation: dict[str, Any] = {"id": conv, "turn": k}
            if by_reference and previous is not None:
                conversation |= {"previous_request_id": previous, "previous_candidate": 0}
            rid = str(uuid.UUID(int=(c << 32 | k) + 1, version=4))
            at = t0 + i * 1000
            inference = inference_record({
                "request_id": rid, "event_time": at, "prompt": f"turn {k}",
                "prompt_messages": delta if conversation.get("previous_request_id") else transcript,
                "candidates": [answers[2 * i], answers[2 * i + 1]], "model": {"name": "m"},
                "conversation": conversation,
            })  # fmt: skip
            feedback = None
            if k % JUDGED_EVERY == JUDGED_EVERY - 1:
                feedback = feedback_record({
                    "feedback_id": str(uuid.uuid4()), "request_id": rid, "event_time": at + 500, "kind": "PAIRWISE",
                    "pairwise": {"chosen": 0, "rejected": 1}, "source": {"type": "HUMAN_ANNOTATOR", "id": "a"},
                })  # fmt: skip
            out.append((inference, feedback))
            transcript = [*transcript, {"role": "assistant", "content": answers[2 * i]}]
            previous = rid
    return out


def encoded(events: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> list[Input]:
    codec = SingleObjectCodec()
    out: list[Input] = []
    offsets: Counter[str] = Counter()
    for inference, feedback in events:
        for topic, name, record in (
            ("inference", "InferenceEvent", inference),
            ("feedback", "FeedbackEvent", feedback),
        ):
            if record is None:
                continue
            ts = int(record["event_time"].timestamp() * 1000)
            value = codec.encode(name, record)
            out.append((topic, 0, offsets[topic], str(record["request_id"]).encode(), value, ts))
            offsets[topic] += 1
    return out


def join_once(data: list[Input]) -> tuple[float, Counter[str], list[Any]]:
    """Seconds to join ``data``, the bytes emitted per role, and the emitted records (pairs and turns)."""
    wall = max(ts for *_, ts in data) + 1
    joiner = Joiner(JoinConfig(), SingleObjectCodec(), {}, "inference", "feedback", wall_ms=lambda: wall)
    emitted = []
    started = time.perf_counter()
    for record in data:
        emitted += joiner.process(*record)
    seconds = time.perf_counter() - started
    sizes: Counter[str] = Counter()
    for e in emitted:
        sizes[e.role] += len(e.value)
    return seconds, sizes, [e for e in emitted if e.role in ("pairs", "turns")]


def write_log(root: Path, emitted: list[Any]) -> str:
    """The pairs and turns the join emitted, one file each, as the sink writes them; the log's URL."""
    storage = Storage(f"file://{root}")
    for role, record in (("pairs", "PreferencePair"), ("turns", "ConversationTurn")):
        rows = [e.record for e in emitted if e.role == role]
        schema = arrow_schema(default_store().latest(record).raw)
        name = file_name(f"preflog.{role}.v1", 0, 0, len(rows) - 1)
        storage.put(f"{role}/dt=2026-09-21/{name}", encode(to_table(rows, schema)))
    return f"file://{root}"


def best(rounds: int, fn: Any) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.conversations
    figures: dict[str, dict[str, Any]] = {}
    for mode in ("full", "reference"):
        data = encoded(conversations(n, args.turns, by_reference=mode == "reference"))
        wire = sum(len(v) for topic, _, _, _, v, _ in data if topic == "inference")
        runs = [join_once(data) for _ in range(args.rounds)]
        seconds = min(r[0] for r in runs)
        _, sizes, emitted = runs[0]
        with tempfile.TemporaryDirectory() as tmp:
            url = write_log(Path(tmp), emitted)
            pairs = read_pairs(url, histories=False).num_rows
            as_sent = best(args.rounds, lambda url=url: read_pairs(url, histories=False))
            resolved = best(args.rounds, lambda url=url: read_pairs(url))
            assert mode == "full" or read_pairs(url).column("history_problem").null_count == pairs  # all resolved
        figures[mode] = {"wire": wire, "rate": len(data) / seconds, "sizes": sizes, "pairs": pairs,
                         "as_sent": as_sent, "resolved": resolved}  # fmt: skip
        print(
            f"{mode:>9}: inference bytes on the wire {wire / n / 1e6:.2f} MB per conversation, {wire / 1e6:.1f} MB "
            f"in all; join {len(data) / seconds:,.0f} events/s; emitted pairs {sizes['pairs'] / 1e6:.1f} MB, "
            f"turns {sizes['turns'] / 1e6:.1f} MB; read_pairs of {pairs} pairs {as_sent * 1e3:.0f} ms as sent, "
            f"{resolved * 1e3:.0f} ms with histories resolved"
        )
    full, ref = figures["full"], figures["reference"]
    print(f"{n} conversations of {args.turns} turns, texts {SIZES[0]}-{SIZES[1]} B, best of {args.rounds} rounds")
    print(f"wire bytes, reference / full: {ref['wire'] / full['wire']:.3f} ({full['wire'] / ref['wire']:.1f}x fewer)")
    print(f"join throughput, reference / full: {ref['rate'] / full['rate']:.2f}x")
    stored = sum(ref["sizes"].values()) / sum(full["sizes"].values())
    print(f"bytes the join emits, reference / full: {stored:.3f}")
    print(f"read-time resolution, by reference: {ref['resolved'] / ref['as_sent']:.2f}x reading as sent "
          f"(+{(ref['resolved'] - ref['as_sent']) / ref['pairs'] * 1e6:.0f} us per pair)")  # fmt: skip
    print(f"reading whole histories, by reference resolved / in full as sent: {ref['resolved'] / full['as_sent']:.2f}x")


if __name__ == "__main__":
    main()
