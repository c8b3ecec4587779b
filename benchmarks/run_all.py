"""Every benchmark, one after the other, and one table of their figures and ratios.

    python benchmarks/run_all.py            # the default sizes (hours on 2 cores: see below)
    python benchmarks/run_all.py --quick    # small sizes, to check that everything runs (about 10 min)
    python benchmarks/run_all.py --only processor,sink --out results/

The dataset-build and report benchmarks run at 1M and 10M pairs of realistic text (3.9 kB a
pair, 39 GB of text at 10M): a few hours, and their scratch folders under ``$TMPDIR`` hold up to
about 40 GB (the dataset build at 10M; see each benchmark's "scratch disk at most"). The others
take about 20 minutes.

Each benchmark runs in its own process and writes its rows with ``--json``
(:mod:`report_rows`); every ratio is against a baseline measured in the same
benchmark run, on the same input. The table is printed and written, with the
machine it ran on, to ``--out`` (``results.md`` and ``results.json``). Run
nothing else on the machine meanwhile: the figures are only as quiet as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

#: name -> (script, arguments at the default size, arguments with --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "joiner": ("joiner_throughput.py", ["--requests", "12000"], ["--requests", "3000", "--rounds", "1"]),
    "processor": ("processor_throughput.py", ["--requests", "8000"], ["--requests", "2000"]),
    "peer-quix": ("peer_quix.py", ["--requests", "8000"], ["--requests", "2000", "--rounds", "1"]),
    "replay": ("replay_throughput.py", ["--requests", "10000"], ["--requests", "2000"]),
    "sink": ("sink_throughput.py", ["--rows", "50000"], ["--rows", "10000"]),
    "scale-out": ("scaleout.py", ["--requests", "6000"], ["--requests", "1500", "--workers", "1,2"]),
    "latency": ("latency.py", ["--duration", "30"], ["--duration", "10", "--calibrate-requests", "1000"]),
    "latency-10s-files": (
        "latency.py",
        ["--duration", "30", "--sink", "max_age_s=10"],
        ["--duration", "10", "--calibrate-requests", "1000", "--sink", "max_age_s=10"],
    ),
    "memory": ("state_memory.py", ["--sizes", "100000,300000"], ["--sizes", "10000"]),
    # realistic text (3.9 kB a pair): 1M and 10M pairs side by side, each beside DuckDB's scan of the same files
    "dataset": ("dataset_build.py", ["--pairs", "1000000,10000000"], ["--pairs", "20000,50000"]),
    "report": ("report_time.py", ["--pairs", "1000000,10000000"], ["--pairs", "20000,50000"]),
}


def machine() -> str:
    """One line about the machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}, {platform.system()}"


def run(name: str, quick: bool, work: Path) -> tuple[list[dict[str, Any]], float, str]:
    """Run one benchmark; its rows, its wall time, and the tail of its output if it failed."""
    script, full, small = BENCHMARKS[name]
    out = work / f"{name}.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *(small if quick else full), "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    took = time.monotonic() - started
    if proc.returncode != 0 or not out.exists():
        return [], took, "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
    return json.loads(out.read_text()), took, ""


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as one Markdown table."""
    lines = ["| group | what | figure | ratio | target |", "| --- | --- | ---: | ---: | --- |"]
    for r in rows:
        figure = r["figure"]
        shown = f"{figure:,.0f}" if abs(figure) >= 100 else f"{figure:.3g}"
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['group']} | {r['what']} | {shown} {r['unit']} | {ratio} | {r.get('target') or ''} |")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmarks named by ``--only`` (default all) and print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that every benchmark runs")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", default="benchmark-results", help="folder for results.md and results.json")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="preflog-bench-all-") as tmp:
        for name in names:
            print(f"running {name} ...", flush=True)
            got, took, error = run(name, args.quick, Path(tmp))
            print(f"  {name}: {len(got)} figure(s) in {took:.0f} s" + (" FAILED" if error else ""), flush=True)
            rows += got
            if error:
                failed[name] = error
    about = machine()
    report = f"Machine: {about}\n\n{table(rows)}\n"
    print("\n" + report)
    for name, error in failed.items():
        print(f"{name} failed:\n{error}\n", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(report)
    (out / "results.json").write_text(json.dumps({"machine": about, "rows": rows, "failed": failed}, indent=2))
    print(f"written: {out / 'results.md'}, {out / 'results.json'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
