"""Time and peak memory of ``preflog report`` over N generated pairs (target: 1M pairs in 60 s or less).

    python benchmarks/report_time.py [--pairs 1000000] [--json rows.json]

Writes an audit log of N pairs (files of 100,000 rows, made with numpy and pyarrow from one
sample pair): three model versions, a third of the pairs arena-style (two models), sources
HUMAN_ANNOTATOR, END_USER and REWARD_MODEL, answer lengths from 20 to 2,000 characters, four
candidates per request, a month of feedback times, and the reward model and a second annotator
on some of the same requests. Then runs the report (200 bootstrap rounds) in a child process and
prints its wall time and peak RSS beside reading the same log with ``preflog.read_pairs``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from report_rows import Row, timed_child, write_rows

from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage

CHILD = """
import resource, sys, time
from pathlib import Path
from preflog.dataset.select import Selection
from preflog.report.build import report
from preflog.sinks.read import read_table
started = time.perf_counter()
if sys.argv[1] == "read":
    n = read_table(sys.argv[2], "pairs").num_rows
else:
    n = report(sys.argv[2], Path(sys.argv[3]), Selection()).meta["pairs"]
took = time.perf_counter() - started
print(n, took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
MODELS = [("acme-chat", "2026.10"), ("acme-chat", "2026.11"), ("acme-mini", "1.4")]
SOURCES = ["HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL"]


def _ids(prefix: str, values: np.ndarray) -> pa.Array:
    return pa.array([f"{prefix}{v:012d}" for v in values.tolist()], pa.string())


def _models(which: np.ndarray, model_type: pa.DataType) -> pa.Array:
    return pa.array([{"name": MODELS[m][0], "version": MODELS[m][1]} for m in which.tolist()], model_type)


def write_log(root: Path, pairs: int, per_file: int = 100_000, seed: int = 0) -> None:
    """An audit log of ``pairs`` generated pairs under ``root``."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.samples import all_samples

    rng = np.random.default_rng(seed)
    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    one = to_table([all_samples()["PreferencePair"]], schema)
    model_type = schema.field("chosen_model").type
    storage = Storage(f"file://{root}")
    start_ms = 1_793_491_200_000  # 2026-11-01
    for first in range(0, pairs, per_file):
        n = min(per_file, pairs - first)
        i = np.arange(first, first + n)
        request = i // 2  # two judgements a request: the reward model or a second person on the same answers
        chosen_model = rng.integers(0, 3, n)
        arena = rng.random(n) < 0.33
        rejected_model = np.where(arena, (chosen_model + rng.integers(1, 3, n)) % 3, chosen_model)
        chosen_index = rng.integers(0, 4, n)
        rejected_index = (chosen_index + rng.integers(1, 4, n)) % 4
        lengths = rng.integers(20, 2000, (2, n))
        table = one.take(pa.array(np.zeros(n, dtype=np.int64)))
        columns = {
            "pair_id": _ids("00000000-0000-4000-8000-", i),
            "feedback_id": _ids("00000000-0000-4000-9000-", i),
            "request_id": _ids("00000000-0000-4000-a000-", request),
            "chosen_model": _models(chosen_model, model_type),
            "rejected_model": _models(rejected_model, model_type),
            "chosen_index": pa.array(chosen_index, pa.int32()),
            "rejected_index": pa.array(rejected_index, pa.int32()),
            "chosen": pa.array(["x" * k for k in lengths[0].tolist()], pa.string()),
            "rejected": pa.array(["y" * k for k in lengths[1].tolist()], pa.string()),
            "feedback_time": pa.array(start_ms + (i * 2_592_000_000 // pairs), pa.timestamp("ms", tz="UTC")),
            "join_latency_ms": pa.array(rng.integers(100, 3_600_000, n), pa.int64()),
        }
        source_type = np.array(SOURCES)[rng.integers(0, 3, n)]
        source = table.column("source").combine_chunks()
        columns["source"] = pa.StructArray.from_arrays(
            [pa.array(source_type, pa.string()).cast(source.type.field("type").type),
             pa.array([f"judge-{k}" for k in rng.integers(0, 40, n).tolist()], pa.string()),
             source.field("name"), source.field("version")],
            fields=list(source.type),
        )  # fmt: skip
        for name, column in columns.items():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, table.schema.field(index), column.cast(table.schema.field(index).type))
        path = file_name("preflog.pairs.v1", 0, first, first + n - 1)
        storage.put(f"pairs/dt=2026-11-01/{path}", encode(table))


def child(*args: str) -> tuple[int, float, float]:
    """Run CHILD; rows, seconds, peak RSS in MB."""
    return timed_child(CHILD, *args)


def main() -> None:
    """Write the log, read it, report on it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflog-report-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_log(root / "log", args.pairs)
        print(f"wrote {args.pairs:,} pairs in {time.perf_counter() - started:.1f} s")
        url = f"file://{root / 'log'}"
        n_read, read_s, read_mb = child("read", url)
        n, report_s, report_mb = child("report", url, str(root / "report"))
    print(f"read_pairs: {n_read:,} pairs in {read_s:.1f} s, peak RSS {read_mb:.0f} MB")
    print(f"report: {n:,} pairs in {report_s:.1f} s (target <= 60 s), peak RSS {report_mb:.0f} MB")
    out = [
        Row(group="report", what=f"read_pairs, {args.pairs:,} pairs", figure=round(read_s, 1), unit="s",
            baseline=None, ratio=None, target=None),
        Row(group="report", what=f"preflog report, {args.pairs:,} pairs", figure=round(report_s, 1), unit="s",
            baseline=f"read_pairs, {args.pairs:,} pairs", ratio=round(report_s / read_s, 2), target="<= 60 s"),
        Row(group="report", what="preflog report, peak RSS", figure=round(report_mb), unit="MB", baseline=None,
            ratio=None, target=None),
    ]  # fmt: skip
    if args.json:
        write_rows(args.json, out)


if __name__ == "__main__":
    main()
