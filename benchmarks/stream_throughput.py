"""``preflog.stream_pairs`` against reading the same files with pyarrow, pairs of production size.

    python benchmarks/stream_throughput.py [--pairs 200000] [--file-rows 50000]

Writes ``--pairs`` pairs (prompts 0.8-2.4 kB, answers 0.3-2 kB: ``realistic_text.py``) as an audit log
of files of ``--file-rows`` rows named and noted (manifests) as the sink names them, then reads them:

* **pyarrow, dicts**: ``ParquetFile.iter_batches`` over every file, each batch ``to_pylist()``: the same
  rows, as the same Python dicts, with no stream bookkeeping (the baseline);
* **pyarrow, Arrow**: the same without making dicts (what a columnar consumer would pay);
* **stream_pairs**: ``preflog.stream_pairs(follow=False)``, every pair as a dict, with ``token()`` taken
  after every pair as a trainer saving its place would.

Prints pairs/s and the ratio to the dicts baseline, and the peak RSS of each reader (a child process).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_log import sample_table, set_column  # noqa: E402
from realistic_text import TextMaker  # noqa: E402


def write_log(root: Path, pairs: int, file_rows: int) -> int:
    maker = TextMaker()
    written = 0
    for first in range(0, pairs, file_rows):
        n = min(file_rows, pairs - first)
        keys = np.arange(first, first + n)
        table = sample_table(n)
        table = set_column(table, "pair_id", pa.array([f"pair-{k:09d}" for k in keys]))
        table = set_column(table, "prompt", maker.texts(0, keys, (800, 2400)))
        table = set_column(table, "chosen", maker.texts(1, keys, (300, 2000)))
        table = set_column(table, "rejected", maker.texts(2, keys, (300, 2000)))
        name = f"preflog.pairs.v1+0+{first:019d}-{first + n - 1:019d}.parquet"
        data = root / "pairs" / "dt=2026-11-01" / name
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, data, compression="zstd")
        manifest = root / "_manifests" / "pairs" / "dt=2026-11-01" / f"{name}.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"rows": n}))
        written += n
    return written


def _files(root: Path) -> list[Path]:
    return sorted((root / "pairs").rglob("*.parquet"))


def read_dicts(root: Path) -> int:
    n = 0
    for path in _files(root):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            n += len(batch.to_pylist())
    return n


def read_arrow(root: Path) -> int:
    return sum(b.num_rows for p in _files(root) for b in pq.ParquetFile(p).iter_batches(batch_size=1024))


def read_stream(root: Path) -> int:
    import preflog

    stream = preflog.stream_pairs(f"file://{root}", follow=False, keys="sealed")
    n = 0
    for _ in stream:
        stream.token()
        n += 1
    return n


def _child(name: str, root: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    started = time.perf_counter()
    n = {"dicts": read_dicts, "arrow": read_arrow, "stream": read_stream}[name](Path(root))
    seconds = time.perf_counter() - started
    out.put((n, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(name: str, root: Path) -> tuple[int, float, float]:
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    proc = spawn.Process(target=_child, args=(name, str(root), out))
    proc.start()
    result = out.get()
    proc.join()
    return result  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--file-rows", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflog-stream-") as tmp:
        root = Path(tmp)
        n = write_log(root, args.pairs, args.file_rows)
        size = sum(p.stat().st_size for p in _files(root)) / 1e6
        print(f"{n} pairs in {len(_files(root))} files, {size:.0f} MB of Parquet")
        results = {name: measure(name, root) for name in ("dicts", "arrow", "stream")}
    base = results["dicts"][0] / results["dicts"][1]
    for name, (count, seconds, rss) in results.items():
        rate = count / seconds
        print(f"{name:<8} {count:>9} pairs  {rate:>12,.0f} pairs/s  {rate / base:5.2f}x  peak RSS {rss:,.0f} MB")
    return 0 if results["stream"][0] == n else 1


if __name__ == "__main__":
    sys.exit(main())
