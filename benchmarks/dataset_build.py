"""Build time and peak memory of ``preflog dataset build`` over N generated pairs.

    python benchmarks/dataset_build.py [--pairs 1000000] [--json rows.json]

Writes an audit log of N pairs (files of 50,000 rows, made with pyarrow from
one sample pair: distinct ids, 1 prompt in 4 repeated, 1 pair in 10 an exact
duplicate), then builds a dataset from it in a child process and reports its
wall time, its peak RSS, and pairs/s. The baseline is reading the same log
with ``preflog.read_pairs`` (the build reads it too). The log is written in
two steps, 90% then 10%: a build of the first part is the base of an
incremental build (``--since``) of the whole, timed beside the full build.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from report_rows import Row, timed_child, write_rows

from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage

CHILD = """
import resource, sys, time
from pathlib import Path
from preflog.dataset.build import build
from preflog.dataset.select import Selection
from preflog.sinks.read import read_table
started = time.perf_counter()
if sys.argv[1] == "read":
    n = read_table(sys.argv[2], "pairs").num_rows
else:
    since = sys.argv[5] if len(sys.argv) > 5 else None
    n = sum(build(sys.argv[2], Path(sys.argv[3]), sys.argv[4], Selection(), since=since)["rows"].values())
took = time.perf_counter() - started
print(n, took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_log(root: Path, pairs: int, per_file: int = 50_000, start: int = 0) -> None:
    """Generated pairs ``start`` to ``pairs`` (exclusive) under ``root``, in files of ``per_file``."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.samples import all_samples

    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    one = to_table([all_samples()["PreferencePair"]], schema)
    storage = Storage(f"file://{root}")
    for first in range(start, pairs, per_file):
        n = min(per_file, pairs - first)
        table = one.take(pa.array([0] * n))
        i = pa.array(range(first, first + n), pa.int64())
        ids = pc.binary_join_element_wise(
            "00000000-0000-4000-8000-", pc.utf8_lpad(pc.cast(i, pa.string()), 12, "0"), ""
        )
        prompts = pc.binary_join_element_wise("Question ", pc.cast(pc.divide(i, 4), pa.string()), "?", "")
        chosen = pc.binary_join_element_wise("answer ", pc.cast(pc.divide(i, 10), pa.string()), "")
        table = table.set_column(table.schema.get_field_index("pair_id"), "pair_id", ids)
        padded = pc.utf8_lpad(pc.cast(i, pa.string()), 12, "0")
        feedback = pc.binary_join_element_wise("00000000-0000-4000-9000-", padded, "")
        table = table.set_column(table.schema.get_field_index("feedback_id"), "feedback_id", feedback)
        table = table.set_column(table.schema.get_field_index("prompt"), "prompt", prompts)
        table = table.set_column(table.schema.get_field_index("chosen"), "chosen", chosen)
        table = table.set_column(table.schema.get_field_index("prompt_messages"), "prompt_messages",
                                 pa.nulls(n, table.schema.field("prompt_messages").type))  # fmt: skip
        name = file_name("preflog.pairs.v1", 0, first, first + n - 1)
        storage.put(f"pairs/dt=2026-11-01/{name}", encode(table))


def child(*args: str) -> tuple[int, float, float]:
    """Run CHILD; rows, seconds, peak RSS in MB."""
    return timed_child(CHILD, *args)


def main() -> None:
    """Write the log, read it, build from it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflog-dataset-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        first_part = (args.pairs * 9 // 10) // 50_000 * 50_000 or args.pairs * 9 // 10
        write_log(root / "log", first_part)
        url = f"file://{root / 'log'}"
        child("build", url, str(root / "datasets"), "base")
        write_log(root / "log", args.pairs, start=first_part)
        print(f"wrote {args.pairs:,} pairs in {time.perf_counter() - started:.1f} s (with a build of the first 90%)")
        n_read, read_s, read_mb = child("read", url)
        rows, build_s, build_mb = child("build", url, str(root / "datasets"), "full")
        inc_rows, inc_s, inc_mb = child("build", url, str(root / "datasets"), "incremental", "base")
        if inc_rows != rows:
            raise SystemExit(f"the incremental build has {inc_rows} rows, the full one {rows}")
    print(f"read_pairs: {n_read:,} pairs in {read_s:.1f} s, peak RSS {read_mb:.0f} MB")
    print(f"dataset build: {rows:,} rows from {args.pairs:,} pairs in {build_s:.1f} s, peak RSS {build_mb:.0f} MB")
    print(f"  {args.pairs / build_s:,.0f} pairs/s ({read_s / build_s:.2f}x of the read's speed)")
    print(f"incremental build (--since a build of the first {first_part:,}): {inc_s:.1f} s, peak RSS {inc_mb:.0f} MB "
          f"({build_s / inc_s:.2f}x faster than the full build)")
    base = f"read_pairs, {args.pairs:,} pairs"
    out = [
        Row(group="dataset", what=base, figure=round(args.pairs / read_s), unit="pairs/s", baseline=None,
            ratio=None, target=None),
        Row(group="dataset", what=f"dataset build, {args.pairs:,} pairs", figure=round(args.pairs / build_s),
            unit="pairs/s", baseline=base, ratio=round(read_s / build_s, 3), target=None),
        Row(group="dataset", what="dataset build, seconds", figure=round(build_s, 1), unit="s", baseline=None,
            ratio=None, target=None),
        Row(group="dataset", what="dataset build, peak RSS", figure=round(build_mb), unit="MB", baseline=None,
            ratio=None, target=None),
        Row(group="dataset", what="incremental build (+10%), seconds", figure=round(inc_s, 1), unit="s",
            baseline="dataset build, seconds", ratio=round(inc_s / build_s, 3), target=None),
    ]  # fmt: skip
    if args.json:
        write_rows(args.json, out)


if __name__ == "__main__":
    main()
