"""Time and peak memory of ``preflog report`` over N generated pairs, beside DuckDB's own scan of the same files.

    python benchmarks/report_time.py [--pairs 1000000,10000000] [--text realistic|tiny]
        [--prompt-bytes 800-2400] [--answer-bytes 300-2000] [--memory-limit 1GB] [--dir /big/disk] [--json rows.json]

For each size: writes an audit log of N pairs (files of 100,000 rows, made with numpy and pyarrow
from one sample pair, two processes writing): three model versions, a third of the pairs
arena-style (two models), sources HUMAN_ANNOTATOR, END_USER and REWARD_MODEL, four candidates per
request, a month of feedback times, and the reward model and a second annotator on some of the
same requests; prompts and answers of production size (:mod:`realistic_text`: a request's prompt
and its four candidates are texts of their own), or with ``--text tiny`` the old "xxx..." answers
of 20 to 2,000 characters. Then runs the report (200 bootstrap rounds) in a child process, with
``--memory-limit`` when the report takes one, and the baseline (:mod:`duckdb_baseline`: DuckDB
scanning the same files into a narrow table and writing a few GROUP BY aggregates) in another,
and prints, side by side for each size, their wall times and peak RSS, the ratios with their
targets, and how flat the report's peak memory is from the first size to the last.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bench_log import (
    DiskWatch,
    Job,
    add_arguments,
    child,
    encoded,
    gb,
    jobs,
    maker,
    sample_table,
    set_column,
    side_by_side,
    write_files,
)
from duckdb_baseline import REPORT_CHILD
from report_rows import Row, write_rows

CHILD = """
import sys, time
from pathlib import Path
from bench_log import accepted
from report_rows import peak_rss_kb
from preflog.dataset.select import Selection
from preflog.report.build import report
kwargs, ignored = accepted(report, {"memory_limit": sys.argv[3] or None})
started = time.perf_counter()
n = report(sys.argv[1], Path(sys.argv[2]), Selection(), **kwargs).meta["pairs"]
took = time.perf_counter() - started
print("ignored", *ignored)
print(n, took, peak_rss_kb())
"""
MODELS = [("acme-chat", "2026.10"), ("acme-chat", "2026.11"), ("acme-mini", "1.4")]
SOURCES = ["HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL"]
PER_FILE = 100_000
SECONDS_TARGET_1M = 60.0  # the report of 1M pairs, as before
RSS_TARGET_MB = 1024
TIME_TARGET = 3.0  # within 3x of DuckDB's scan
FLAT_TARGET = 1.25


def _ids(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), 12, "0"), "")


def _models(which: np.ndarray, model_type: pa.DataType) -> pa.Array:
    return pa.array([{"name": n, "version": v} for n, v in MODELS], model_type).take(pa.array(which))


def write_file(job: Job) -> tuple[int, int]:
    """One file of the log: rows ``job.first`` ... (a module-level function: a pool worker runs it)."""
    n = job.n
    rng = np.random.default_rng(job.first)  # each file its own draws, whichever process writes it
    i = np.arange(job.first, job.first + n)
    request = i // 2  # two judgements a request: the reward model or a second person on the same answers
    chosen_model = rng.integers(0, 3, n)
    arena = rng.random(n) < 0.33
    rejected_model = np.where(arena, (chosen_model + rng.integers(1, 3, n)) % 3, chosen_model)
    chosen_index = rng.integers(0, 4, n)
    rejected_index = (chosen_index + rng.integers(1, 4, n)) % 4
    table = sample_table(n)
    model_type = table.schema.field("chosen_model").type
    if job.text == "tiny":
        lengths = rng.integers(20, 2000, (2, n))
        chosen = pa.array(["x" * k for k in lengths[0].tolist()], pa.string())
        rejected = pa.array(["y" * k for k in lengths[1].tolist()], pa.string())
        prompt = table.column("prompt").combine_chunks()
    else:
        texts = maker()
        prompt = texts.texts(0, request, job.prompt_bytes)
        chosen = texts.texts(1, request * 4 + chosen_index, job.answer_bytes)  # a request's candidates are its own
        rejected = texts.texts(1, request * 4 + rejected_index, job.answer_bytes)
    start_ms = 1_793_491_200_000  # 2026-11-01
    columns = {
        "pair_id": _ids("00000000-0000-4000-8000-", i),
        "feedback_id": _ids("00000000-0000-4000-9000-", i),
        "request_id": _ids("00000000-0000-4000-a000-", request),
        "chosen_model": _models(chosen_model, model_type),
        "rejected_model": _models(rejected_model, model_type),
        "chosen_index": pa.array(chosen_index, pa.int32()),
        "rejected_index": pa.array(rejected_index, pa.int32()),
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "feedback_time": pa.array(start_ms + (i * 2_592_000_000 // job.total), pa.timestamp("ms", tz="UTC")),
        "join_latency_ms": pa.array(rng.integers(100, 3_600_000, n), pa.int64()),
    }
    source = table.column("source").combine_chunks()
    judges = pa.array([f"judge-{k}" for k in range(40)], pa.string())
    columns["source"] = pa.StructArray.from_arrays(
        [pa.array(SOURCES, pa.string()).take(pa.array(rng.integers(0, 3, n))).cast(source.type.field("type").type),
         judges.take(pa.array(rng.integers(0, 40, n))), source.field("name"), source.field("version")],
        fields=list(source.type),
    )  # fmt: skip
    for name, column in columns.items():
        table = set_column(table, name, column)
    text = sum(pc.sum(pc.binary_length(c)).as_py() or 0 for c in (prompt, chosen, rejected))
    return text, encoded(table, job.root, job.first)


def run_size(pairs: int, args: argparse.Namespace) -> dict[str, float]:
    """Write a log of ``pairs``, report on it, run the baseline; the figures."""
    scratch = Path(tempfile.mkdtemp(prefix="preflog-report-bench-", dir=args.dir))
    limit = args.memory_limit or ""
    fig: dict[str, float] = {}
    try:
        with DiskWatch(scratch) as disk:
            log = scratch / "log"
            started = time.perf_counter()
            fig["text"], fig["parquet"] = write_files(write_file, jobs(log, 0, pairs, PER_FILE, args), args.workers)
            disk.step("log")
            print(f"{pairs:,} pairs: {gb(fig['text'])} of text, {gb(fig['parquet'])} of Parquet "
                  f"({fig['text'] / fig['parquet']:.1f}x), written in {time.perf_counter() - started:.0f} s",
                  flush=True)  # fmt: skip
            n, fig["report_s"], fig["report_mb"], lines = child(
                CHILD, f"file://{log}", str(scratch / "report"), limit, scratch=scratch
            )
            disk.step("report")
            ignored = lines[-1].split()[1:] if lines and lines[-1].startswith("ignored") else []
            print(
                f"  report: {n:,} pairs in {fig['report_s']:.1f} s, peak RSS {fig['report_mb']:.0f} MB"
                + (f" (the report takes no {', '.join(ignored)})" if ignored else ""),
                flush=True,
            )
            duck, fig["duck_s"], fig["duck_mb"], _ = child(
                REPORT_CHILD, str(log), str(scratch / "duckdb"), limit, scratch=scratch
            )
            disk.step("DuckDB")
            print(f"  DuckDB: {duck:,} pairs in {fig['duck_s']:.1f} s, peak RSS {fig['duck_mb']:.0f} MB", flush=True)
        fig["disk"] = disk.peak
        print("  scratch disk at most: " + ", ".join(f"{k} {gb(v)}" for k, v in disk.steps.items()), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return fig


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    """Run each size, print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, "1000000,10000000")
    args = parser.parse_args()
    sizes = args.pairs
    figs = [run_size(n, args) for n in sizes]
    ratios = [f["report_s"] / f["duck_s"] for f in figs]
    print()
    print(side_by_side(sizes, [
        ("log: text", [gb(f["text"]) for f in figs], ""),
        ("log: Parquet", [gb(f["parquet"]) for f in figs], ""),
        ("preflog report, s", [f"{f['report_s']:.1f}" for f in figs], f"<= {SECONDS_TARGET_1M:g} s at 1M"),
        ("preflog report, peak RSS MB", [f"{f['report_mb']:,.0f}" for f in figs], f"<= {RSS_TARGET_MB:,} MB"),
        ("DuckDB scan and aggregates, s", [f"{f['duck_s']:.1f}" for f in figs], ""),
        ("DuckDB scan and aggregates, peak RSS MB", [f"{f['duck_mb']:,.0f}" for f in figs], ""),
        ("report / DuckDB time", [f"{r:.2f}x" for r in ratios], f"<= {TIME_TARGET:g}x"),
        ("scratch disk at most", [gb(f["disk"]) for f in figs], ""),
    ]))  # fmt: skip
    flat = figs[-1]["report_mb"] / figs[0]["report_mb"]
    if len(sizes) > 1:
        print(f"peak RSS at {sizes[-1]:,} over {sizes[0]:,} pairs: {figs[-1]['report_mb']:,.0f} / "
              f"{figs[0]['report_mb']:,.0f} MB = {flat:.2f}x (target: flat, <= {FLAT_TARGET:g}x)")  # fmt: skip
    out: list[Row] = []
    for n, f, ratio in zip(sizes, figs, ratios, strict=True):
        duck = f"DuckDB scan and aggregates, {n:,} pairs"
        seconds = f"<= {SECONDS_TARGET_1M:g} s, " if n == 1_000_000 else ""
        ok = ratio <= TIME_TARGET and (n != 1_000_000 or f["report_s"] <= SECONDS_TARGET_1M)
        out += [
            Row(group="report", what=duck, figure=round(f["duck_s"], 1), unit="s", baseline=None, ratio=None,
                target=None),
            Row(group="report", what=f"preflog report, {n:,} pairs", figure=round(f["report_s"], 1), unit="s",
                baseline=duck, ratio=round(ratio, 2), target=f"{seconds}<= {TIME_TARGET:g}x ({_met(ok)})"),
            Row(group="report", what=f"preflog report peak RSS, {n:,} pairs", figure=round(f["report_mb"]),
                unit="MB", baseline=None, ratio=None,
                target=f"<= {RSS_TARGET_MB} MB ({_met(f['report_mb'] <= RSS_TARGET_MB)})"),
            Row(group="report", what=f"DuckDB peak RSS, {n:,} pairs", figure=round(f["duck_mb"]), unit="MB",
                baseline=None, ratio=None, target=None),
        ]  # fmt: skip
    if len(sizes) > 1:
        out.append(Row(group="report", what=f"report peak RSS {sizes[-1]:,} / {sizes[0]:,} pairs",
                       figure=round(flat, 2), unit="x", baseline=None, ratio=None,
                       target=f"<= {FLAT_TARGET:g}x ({_met(flat <= FLAT_TARGET)})"))  # fmt: skip
    if args.json:
        write_rows(args.json, out)


if __name__ == "__main__":
    main()
