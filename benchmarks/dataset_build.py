"""Time and peak memory of ``preflog dataset build`` over N generated pairs, beside DuckDB's own scan of the same files.

    python benchmarks/dataset_build.py [--pairs 1000000,10000000] [--formats parquet,trl] [--compress gzip]
        [--text realistic|tiny] [--prompt-bytes 800-2400] [--answer-bytes 300-2000] [--memory-limit 1GB]
        [--dir /big/disk] [--json rows.json]

For each size: writes an audit log of N pairs (files of 50,000 rows, made with numpy and pyarrow
from one sample pair, two processes writing): distinct ids, each prompt shared by 4 pairs in a row
and each pair of answers by 10, so that many pairs are exact duplicates of the one before (20 pairs
make 6 dataset rows); texts of production size (:mod:`realistic_text`; ``--text tiny``: the old
few bytes).
The log is written in two steps, 90% then 10%: a build of the first part is the base of an
incremental build (``--since``) of the whole, timed beside the full build. Each build runs in a
child process with preflog's memory limit (``--memory-limit``, passed only when the build takes
one, as ``formats`` and ``compress`` are), and the baseline (:mod:`duckdb_baseline`) in another:
DuckDB reading the same files, keeping each pair_id's first copy, merging exact duplicates, sorting
by pair_id and writing the same formats. Prints, side by side for each size, the wall time and peak
RSS of each, the ratios with their targets, the bytes each output took and the most the scratch
folder held; then how flat the build's peak memory is from the first size to the last.

Disk: the log, the base build and one more build at a time (each removed once measured).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bench_log import (
    DiskWatch,
    Job,
    add_arguments,
    child,
    encoded,
    folder_bytes,
    gb,
    jobs,
    maker,
    sample_table,
    set_column,
    side_by_side,
    write_files,
)
from duckdb_baseline import BUILD_CHILD
from report_rows import Row, write_rows

CHILD = """
import sys, time
from pathlib import Path
from bench_log import accepted
from report_rows import peak_rss_kb
from preflog.dataset.build import build
from preflog.dataset.select import Selection
url, root, name, since, limit, formats, compress = sys.argv[1:8]
wanted = {"since": since or None, "memory_limit": limit or None,
          "formats": tuple(formats.split(",")) if formats else None, "compress": compress or None}
kwargs, ignored = accepted(build, wanted)
started = time.perf_counter()
manifest = build(url, Path(root), name, Selection(), **kwargs)
took = time.perf_counter() - started
print("ignored", *ignored)
print(sum(manifest["rows"].values()), took, peak_rss_kb())
"""
PER_FILE = 50_000
ALL_FORMATS = ("parquet", "trl", "trl-conversational", "openai", "nemo")  # what a build writes from pairs alone
RSS_TARGET_MB = 2048
TIME_TARGET = 3.0  # preflog's build within 3x of DuckDB's scan
INCREMENTAL_TARGET = 0.25
FLAT_TARGET = 1.25  # the peak at the largest size over the peak at the smallest: "flat"


def _ids(prefix: str, i: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(pc.cast(i, pa.string()), 12, "0"), "")


def write_file(job: Job) -> tuple[int, int]:
    """One file of the log: rows ``job.first`` ... (a module-level function: a pool worker runs it)."""
    n = job.n
    i = np.arange(job.first, job.first + n, dtype=np.int64)
    table = sample_table(n)
    table = set_column(table, "pair_id", _ids("00000000-0000-4000-8000-", pa.array(i)))
    table = set_column(table, "feedback_id", _ids("00000000-0000-4000-9000-", pa.array(i)))
    if job.text == "tiny":
        prompt = pc.binary_join_element_wise("Question ", pc.cast(pa.array(i // 4), pa.string()), "?", "")
        chosen = pc.binary_join_element_wise("answer ", pc.cast(pa.array(i // 10), pa.string()), "")
        rejected = table.column("rejected").combine_chunks()
    else:
        texts = maker()
        prompt = texts.texts(0, i // 4, job.prompt_bytes)
        chosen = texts.texts(1, i // 10, job.answer_bytes)
        rejected = texts.texts(2, i // 10, job.answer_bytes)
    for name, column in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        table = set_column(table, name, column)
    table = set_column(table, "prompt_messages", pa.nulls(n, table.schema.field("prompt_messages").type))
    text = sum(pc.sum(pc.binary_length(c)).as_py() or 0 for c in (prompt, chosen, rejected))
    return text, encoded(table, job.root, job.first)


def _outputs(build: Path) -> str:
    """The bytes each folder of a build took (``data``: the Parquet shards, ``state``: the rows kept for --since)."""
    parts = [(p.name, folder_bytes(p)) for p in sorted(build.iterdir()) if p.is_dir()]
    return ", ".join(f"{name} {gb(size)}" for name, size in parts)


def run_size(pairs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Write a log of ``pairs``, build it (base, full, incremental), run the baseline; the figures."""
    scratch = Path(tempfile.mkdtemp(prefix="preflog-dataset-bench-", dir=args.dir))
    log, datasets = scratch / "log", scratch / "datasets"
    formats = "" if args.formats == "all" else args.formats
    nan = float("nan")  # a step left out (--steps) prints nan
    fig: dict[str, Any] = {"inc_s": nan, "inc_mb": nan, "duck_s": nan, "duck_mb": nan, "duck_written": 0}

    def build(name: str, since: str = "") -> tuple[int, float, float, list[str]]:
        options = (since, args.memory_limit or "", formats, args.compress)
        return child(CHILD, f"file://{log}", str(datasets), name, *options, scratch=scratch)

    try:
        with DiskWatch(scratch) as disk:
            first_part = (pairs * 9 // 10) // PER_FILE * PER_FILE or pairs * 9 // 10
            started = time.perf_counter()
            text, parquet = write_files(write_file, jobs(log, 0, first_part, PER_FILE, args), args.workers)
            write_s = time.perf_counter() - started
            disk.step("log (90%)")
            if "incremental" in args.steps:
                build("base")
                disk.step("base build")
            started = time.perf_counter()
            more = write_files(write_file, jobs(log, first_part, pairs, PER_FILE, args), args.workers)
            write_s += time.perf_counter() - started
            fig["text"], fig["parquet"] = text + more[0], parquet + more[1]
            print(f"{pairs:,} pairs: {gb(fig['text'])} of text, {gb(fig['parquet'])} of Parquet "
                  f"({fig['text'] / fig['parquet']:.1f}x), written in {write_s:.0f} s", flush=True)  # fmt: skip
            rows, fig["build_s"], fig["build_mb"], lines = build("full")
            disk.step("full build")
            ignored = lines[-1].split()[1:] if lines and lines[-1].startswith("ignored") else []
            fig["outputs"], fig["written"] = _outputs(datasets / "full"), folder_bytes(datasets / "full")
            takes_no = f" (the build takes no {', '.join(ignored)})" if ignored else ""
            print(f"  build: {rows:,} rows in {fig['build_s']:.1f} s, peak RSS {fig['build_mb']:.0f} MB; "
                  f"{fig['outputs']}{takes_no}", flush=True)  # fmt: skip
            shutil.rmtree(datasets / "full")
            if "incremental" in args.steps:
                inc_rows, fig["inc_s"], fig["inc_mb"], _ = build("incremental", "base")
                disk.step("incremental build")
                if inc_rows != rows:
                    raise SystemExit(f"the incremental build has {inc_rows} rows, the full one {rows}")
                print(f"  incremental (+10%): {fig['inc_s']:.1f} s, peak RSS {fig['inc_mb']:.0f} MB", flush=True)
            shutil.rmtree(datasets, ignore_errors=True)
            written = ",".join(ALL_FORMATS) if "formats" in ignored or not formats else formats
            compress = "none" if "compress" in ignored else args.compress
            fig["formats"] = f"{written} ({compress})"
            if "baseline" not in args.steps:
                fig["disk"], fig["steps"] = disk.peak, disk.steps
                return fig
            duck = (str(log), str(scratch / "duckdb"), args.memory_limit or "", written, compress)
            duck_rows, fig["duck_s"], fig["duck_mb"], _ = child(BUILD_CHILD, *duck, scratch=scratch)
            disk.step("DuckDB")
            fig["duck_written"] = folder_bytes(scratch / "duckdb")
            print(f"  DuckDB: {duck_rows:,} rows in {fig['duck_s']:.1f} s, peak RSS {fig['duck_mb']:.0f} MB, "
                  f"{gb(fig['duck_written'])} written", flush=True)  # fmt: skip
            if duck_rows != rows:
                print(f"  (DuckDB's rows differ from the build's: {duck_rows:,} against {rows:,})")
        fig["disk"], fig["steps"] = disk.peak, disk.steps
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return fig


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _table(sizes: list[int], figs: list[dict[str, Any]]) -> str:
    """The figures of each size side by side."""

    def col(fmt: str, key: str) -> list[str]:
        return [gb(f[key]) if fmt == "gb" else fmt.format(f[key]) for f in figs]

    return side_by_side(sizes, [
        ("log: text", col("gb", "text"), ""),
        ("log: Parquet", col("gb", "parquet"), ""),
        ("formats written", col("{}", "formats"), ""),
        ("preflog build, s", col("{:.1f}", "build_s"), ""),
        ("preflog build, peak RSS MB", col("{:,.0f}", "build_mb"), f"<= {RSS_TARGET_MB:,} MB"),
        ("DuckDB scan and write, s", col("{:.1f}", "duck_s"), ""),
        ("DuckDB scan and write, peak RSS MB", col("{:,.0f}", "duck_mb"), ""),
        ("build / DuckDB time", [f"{f['build_s'] / f['duck_s']:.2f}x" for f in figs], f"<= {TIME_TARGET:g}x"),
        ("incremental build (+10%), s", col("{:.1f}", "inc_s"), ""),
        ("incremental build, peak RSS MB", col("{:,.0f}", "inc_mb"), ""),
        ("incremental / full", [f"{f['inc_s'] / f['build_s']:.2f}x" for f in figs], f"<= {INCREMENTAL_TARGET:g}x"),
        ("build outputs", col("gb", "written"), ""),
        ("DuckDB outputs", col("gb", "duck_written"), ""),
        ("scratch disk at most", col("gb", "disk"), ""),
    ])  # fmt: skip


def _rows(sizes: list[int], figs: list[dict[str, Any]]) -> list[Row]:
    """The figures as rows for run_all.py, each with its target and whether it was met (steps left out: no row)."""
    out: list[Row] = []
    for n, f in zip(sizes, figs, strict=True):
        duck, build = f"DuckDB scan and write, {n:,} pairs", f"dataset build, {n:,} pairs"
        ran_duck, ran_inc = f["duck_s"] == f["duck_s"], f["inc_s"] == f["inc_s"]  # not NaN
        if ran_duck:
            out.append(Row(group="dataset", what=duck, figure=round(f["duck_s"], 1), unit="s", baseline=None,
                           ratio=None, target=None))  # fmt: skip
        ratio = f["build_s"] / f["duck_s"] if ran_duck else None
        out += [
            Row(group="dataset", what=build, figure=round(f["build_s"], 1), unit="s",
                baseline=duck if ran_duck else None, ratio=round(ratio, 2) if ratio else None,
                target=f"<= {TIME_TARGET:g}x ({_met(ratio <= TIME_TARGET)})" if ratio else None),
            Row(group="dataset", what=f"dataset build peak RSS, {n:,} pairs", figure=round(f["build_mb"]), unit="MB",
                baseline=None, ratio=None, target=f"<= {RSS_TARGET_MB} MB ({_met(f['build_mb'] <= RSS_TARGET_MB)})"),
        ]  # fmt: skip
        if ran_duck:
            out.append(Row(group="dataset", what=f"DuckDB peak RSS, {n:,} pairs", figure=round(f["duck_mb"]),
                           unit="MB", baseline=None, ratio=None, target=None))  # fmt: skip
        if ran_inc:
            inc = f["inc_s"] / f["build_s"]
            out.append(Row(group="dataset", what=f"incremental build (+10%), {n:,} pairs", figure=round(f["inc_s"], 1),
                           unit="s", baseline=build, ratio=round(inc, 3),
                           target=f"<= {INCREMENTAL_TARGET:g}x ({_met(inc <= INCREMENTAL_TARGET)})"))  # fmt: skip
    if len(sizes) > 1:
        flat = figs[-1]["build_mb"] / figs[0]["build_mb"]
        out.append(Row(group="dataset", what=f"build peak RSS {sizes[-1]:,} / {sizes[0]:,} pairs",
                       figure=round(flat, 2), unit="x", baseline=None, ratio=None,
                       target=f"<= {FLAT_TARGET:g}x ({_met(flat <= FLAT_TARGET)})"))  # fmt: skip
    return out


def main() -> None:
    """Run each size, print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, "1000000,10000000")
    parser.add_argument(
        "--formats",
        default="parquet,trl",
        help=f"the build's outputs, comma-separated, or 'all' (of {', '.join(ALL_FORMATS)})",
    )
    parser.add_argument("--compress", choices=("gzip", "none"), default="gzip", help="of the JSON lines")  # fmt: skip
    parser.add_argument(
        "--steps", type=lambda v: set(v.split(",")), default={"incremental", "baseline"},
        help="besides the full build: incremental (a base build of 90%%, then --since), baseline (DuckDB); "
        "e.g. --steps none for the full build alone",
    )  # fmt: skip
    args = parser.parse_args()
    unknown = set(args.formats.split(",")) - {*ALL_FORMATS, "all"}
    if unknown:
        parser.error(f"unknown format(s) {sorted(unknown)}")
    sizes = args.pairs
    figs = [run_size(n, args) for n in sizes]
    print("\n" + _table(sizes, figs))
    for n, f in zip(sizes, figs, strict=True):
        print(f"  {n:,}: {f['outputs']}; scratch disk at most: "
              + ", ".join(f"{k} {gb(v)}" for k, v in f["steps"].items()))  # fmt: skip
    if len(sizes) > 1:
        first, last = figs[0]["build_mb"], figs[-1]["build_mb"]
        print(f"peak RSS at {sizes[-1]:,} over {sizes[0]:,} pairs: {last:,.0f} / {first:,.0f} MB = "
              f"{last / first:.2f}x (target: flat, <= {FLAT_TARGET:g}x)")  # fmt: skip
    if args.json:
        write_rows(args.json, _rows(sizes, figs))


if __name__ == "__main__":
    main()
