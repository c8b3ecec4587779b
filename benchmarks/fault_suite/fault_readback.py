"""Reading back what a run produced: the audit log's Parquet files in S3, and the pairs topic.

:func:`converge` reads the log until everything expected is there (or
nothing new arrives for a while); :func:`dump` writes what was sent and what
the log holds beside the run's results, for whoever debugs a failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Message, TopicPartition
from fault_plan import log
from fault_schedule import watchdog
from fault_traffic import CODEC

from preflog.kafka.config import consumer_config

if TYPE_CHECKING:
    from fault_checks import Expected
    from fault_run import Run

__all__ = ["COLUMNS", "TABLES", "converge", "drain", "dump", "read_log", "topic_pairs"]

TABLES = ("pairs", "unpaired", "unmatched", "dead_letter")
COLUMNS = {
    "pairs": ["pair_id", "feedback_id", "chosen_index", "rejected_index"],
    "unpaired": ["signal_id", "feedback_id", "completion_index"],
    "unmatched": ["reason", "request_id", "feedback_id", "source_offset"],
    "dead_letter": ["reason", "error_class", "source_offset"],
}


def read_log(run: Run, cache: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every Parquet file per table, read with pyarrow (files are immutable: read once)."""
    import s3fs

    assert run.moto is not None
    fs = s3fs.S3FileSystem(
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": run.moto.endpoint},
        skip_instance_cache=True,
    )
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for table in TABLES:
        base = f"{run.bucket}/{run.prefix}/{table}"
        try:
            paths = sorted(p for p in fs.find(base) if p.endswith(".parquet") and "/." not in p)
        except FileNotFoundError:
            paths = []
        for path in paths:
            if path not in cache:
                data = fs.cat_file(path)
                cache[path] = pq.read_table(io.BytesIO(data), columns=COLUMNS[table]).to_pylist()
                for row in cache[path]:
                    row["_file"] = path
            out[table] += cache[path]
    return out


def drain(run: Run, topics: list[str], name: str) -> Iterator[Message]:
    """Every record of ``topics`` from the beginning, until none arrives for 5 s (a fresh consumer group)."""
    consumer = Consumer(consumer_config(run.kafka_config, f"{name}-{uuid.uuid4().hex[:6]}", quiet=True))
    consumer.assign([TopicPartition(t, p, -2) for t in topics for p in range(run.plan.partitions)])
    idle = time.monotonic()
    try:
        while time.monotonic() - idle < 5:
            msgs = consumer.consume(1000, 0.5)
            if msgs:
                idle = time.monotonic()
            yield from (m for m in msgs if m.error() is None)
    finally:
        consumer.close()


def topic_pairs(run: Run) -> set[str]:
    """pair_ids on the pairs topic (to tell a processor loss from a sink loss)."""
    ids: set[str] = set()
    for m in drain(run, [run.topics.pairs], "faults"):
        with contextlib.suppress(Exception):
            ids.add(CODEC.decode(m.value() or b"", "PreferencePair")["pair_id"])
    return ids


def dump(run: Run, rows: dict[str, list[dict[str, Any]]]) -> None:
    """What was sent (with offsets) and what the audit log holds, for whoever debugs a failure."""
    assert run.sender is not None
    with (run.dir / "sent.jsonl").open("w") as out:
        for s in run.sender.sent:
            key = s.key.decode(errors="replace") if s.key is not None else None
            out.write(json.dumps({"label": s.label, "role": s.role, "key": key, "offsets": s.offsets}) + "\n")
    (run.dir / "audit_rows.json").write_text(json.dumps(rows, default=str))
    assert run.moto is not None
    client = run.moto.client()
    listing: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=run.bucket, Prefix=run.prefix):
        for o in page.get("Contents", []):
            entry: dict[str, Any] = {"size": o["Size"], "modified": str(o["LastModified"])}
            if o["Key"].endswith(".json"):
                body = client.get_object(Bucket=run.bucket, Key=o["Key"])["Body"].read()
                with contextlib.suppress(ValueError):
                    entry["manifest"] = json.loads(body)
            listing[o["Key"]] = entry
    (run.dir / "audit_objects.json").write_text(json.dumps(listing, indent=1, default=str))


def converge(run: Run, exp: Expected) -> dict[str, list[dict[str, Any]]]:
    """Read the log until everything expected is there, or nothing new arrived for ``stall_s``."""
    cache: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + run.plan.converge_timeout_s
    last_change, last_count = time.monotonic(), -1
    while True:
        watchdog(run)
        rows = read_log(run, cache)
        stored = {(r["feedback_id"], r["chosen_index"], r["rejected_index"]) for r in rows["pairs"]}
        um = {r["request_id"] if r["reason"] == "NO_FEEDBACK" else r["feedback_id"] for r in rows["unmatched"]}
        want_um = set().union(*exp.unmatched.values()) if exp.unmatched else set()
        done = exp.pairs <= stored and want_um <= um
        if len(cache) != last_count:
            last_change, last_count = time.monotonic(), len(cache)
        now = time.monotonic()
        if done or now > deadline or now - last_change > run.plan.stall_s:
            log(
                f"converged={done}: {len(stored & exp.pairs)}/{len(exp.pairs)} pairs, "
                f"{len(um & want_um)}/{len(want_um)} unmatched, {len(cache)} files"
            )
            run.converged = done
            time.sleep(4)  # anything extra (a duplicate) shows up now
            return read_log(run, cache)
        time.sleep(2)
