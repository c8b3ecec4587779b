"""What the dataset-build and report benchmarks share: their flags, a generated log written by a pool, timed children.

* :func:`add_arguments`: ``--pairs 1000000,10000000`` (sizes run one after the other, side by side),
  ``--text realistic|tiny``, ``--prompt-bytes``/``--answer-bytes`` (the size distribution),
  ``--memory-limit``, ``--dir`` (the scratch folder's parent), ``--json``;
* :func:`write_files`: a log's files written by a process pool, each by a module-level function
  of the benchmark, with the bytes of text they hold and the bytes of Parquet they took;
* :func:`child`: a script timed in a process of its own (its peak RSS is the run's), spilling to
  the scratch folder, with :class:`DiskWatch` sampling how much that folder holds meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from realistic_text import DEFAULT_ANSWER, DEFAULT_PROMPT, TextMaker, byte_range

__all__ = ["DiskWatch", "Job", "accepted", "add_arguments", "child", "encoded", "folder_bytes", "gb", "jobs", "maker",
           "sample_table", "set_column", "side_by_side", "write_files"]  # fmt: skip

ROOT = Path(__file__).resolve().parents[1]
_MAKER: TextMaker | None = None
_SAMPLE: pa.Table | None = None


def _sizes(text: str) -> list[int]:
    """``"1M,10M"`` or ``"1000000,10000000"`` -> [1000000, 10000000]."""
    scale = {"k": 1_000, "m": 1_000_000}
    out = []
    for part in text.replace("_", "").split(","):
        part = part.strip().lower()
        out.append(int(float(part[:-1]) * scale[part[-1]]) if part[-1:] in scale else int(part))
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: write sizes such as 1000000,10000000 or 1M,10M")
    return out


def add_arguments(parser: argparse.ArgumentParser, default_pairs: str) -> None:
    """The flags both benchmarks take."""
    parser.add_argument(
        "--pairs",
        type=_sizes,
        default=_sizes(default_pairs),
        help="sizes, comma-separated (1M,10M), run one after the other and printed side by side",
    )
    parser.add_argument(
        "--text",
        choices=("realistic", "tiny"),
        default="realistic",
        help="realistic: prompts and answers of production size; tiny: the old few-byte texts",
    )
    parser.add_argument(
        "--prompt-bytes",
        type=byte_range,
        default=byte_range(DEFAULT_PROMPT),
        help=f"prompt length range in bytes, uniform (default {DEFAULT_PROMPT})",
    )
    parser.add_argument(
        "--answer-bytes",
        type=byte_range,
        default=byte_range(DEFAULT_ANSWER),
        help=f"answer length range in bytes, uniform (default {DEFAULT_ANSWER})",
    )
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="passed to preflog and to DuckDB's baseline (default: preflog's default limit)",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes writing the log")
    parser.add_argument("--dir", default=None, help="where the scratch folder goes (default: the system's temp)")
    parser.add_argument("--json", help="also write the rows (benchmarks/report_rows.py) to this path")  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One file of a generated log: rows ``first`` to ``first + n - 1`` under ``root``, and the text options."""

    root: Path
    first: int
    n: int
    text: str
    prompt_bytes: tuple[int, int]
    answer_bytes: tuple[int, int]
    total: int  # the rows of the whole log being written


def maker() -> TextMaker:
    """This process's text maker (made once; a forked worker inherits its parent's)."""
    global _MAKER
    if _MAKER is None:
        _MAKER = TextMaker()
    return _MAKER


def sample_table(n: int) -> pa.Table:
    """``n`` copies of the tests' sample PreferencePair, in the audit log's schema."""
    global _SAMPLE
    if _SAMPLE is None:
        sys.path.insert(0, str(ROOT))
        from preflog.schemas.registry import default_store
        from preflog.sinks.arrow import arrow_schema, to_table
        from tests.samples import all_samples

        schema = arrow_schema(default_store().latest("PreferencePair").raw)
        _SAMPLE = to_table([all_samples()["PreferencePair"]], schema)
    return _SAMPLE.take(pa.array([0] * n, pa.int64()))


def set_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    """``table`` with column ``name`` replaced (cast to its type)."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), column.cast(table.schema.field(index).type))


def write_files(write: Callable[[Job], tuple[int, int]], jobs: list[Job], workers: int) -> tuple[int, int]:
    """Run ``write`` (a module-level function: it returns text bytes and Parquet bytes) over ``jobs``; the sums."""
    if workers <= 1:
        done: Iterable[tuple[int, int]] = map(write, jobs)
        return tuple(map(sum, zip(*done, strict=True)))  # type: ignore[return-value]
    maker()  # made once, before the fork; the tables are made in the workers, this process stays small
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        return tuple(map(sum, zip(*pool.map(write, jobs), strict=True)))  # type: ignore[return-value]


def jobs(root: Path, start: int, stop: int, per_file: int, args: argparse.Namespace) -> list[Job]:
    """The files of rows ``start`` to ``stop - 1``, ``per_file`` a file."""
    return [Job(root, first, min(per_file, stop - first), args.text, args.prompt_bytes, args.answer_bytes, stop)
            for first in range(start, stop, per_file)]  # fmt: skip


def encoded(table: pa.Table, root: Path, first: int) -> int:
    """Write ``table`` (rows ``first``...) as the sink does; the bytes it took."""
    from preflog.sinks.naming import file_name
    from preflog.sinks.parquet import encode
    from preflog.sinks.storage import Storage

    data = encode(table)
    name = file_name("preflog.pairs.v1", 0, first, first + table.num_rows - 1)
    Storage(f"file://{root}").put(f"pairs/dt=2026-11-01/{name}", data)
    return len(data)


class DiskWatch:
    """The most bytes ``folder`` held while in the ``with`` block, and during each step (sampled every second)."""

    def __init__(self, folder: Path, every: float = 1.0) -> None:
        self.folder, self.every = folder, every
        self.peak = self._step = 0
        self.steps: dict[str, int] = {}  # step name -> the most bytes during it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        now = folder_bytes(self.folder)
        self.peak, self._step = max(self.peak, now), max(self._step, now)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def step(self, name: str) -> None:
        """End step ``name``: the most bytes since the previous step ended."""
        self._sample()
        self.steps[name], self._step = self._step, 0

    def __enter__(self) -> DiskWatch:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (files vanishing meanwhile are skipped)."""
    total = 0
    for here, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed meanwhile
                total += os.lstat(os.path.join(here, name)).st_size
    return total


def child(code: str, *args: str, scratch: Path) -> tuple[int, float, float, list[str]]:
    """Run ``code`` with ``args`` in a Python of its own (temporary files under ``scratch/tmp``).

    The script prints ``count seconds peak_kb`` last (:func:`report_rows.peak_rss_kb`); returns them (the peak
    RSS in MB) and its other lines.
    """
    tmp = scratch / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[:1]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    n, took, rss_kb = lines[-1].split()
    return int(n), float(took), int(rss_kb) / 1024, lines[:-1]


def gb(n: float) -> str:
    """Bytes as GB (MB below 1 GB)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def side_by_side(sizes: list[int], rows: list[tuple[str, list[str], str]]) -> str:
    """A plain table: one column per size, a label and a target per row."""
    head = [f"{n:,} pairs" for n in sizes]
    width = max(len(label) for label, _, _ in rows) + 2
    cols = [max(len(h), *(len(v[i]) for _, v, _ in rows)) + 2 for i, h in enumerate(head)]
    lines = ["".ljust(width) + "".join(h.rjust(c) for h, c in zip(head, cols, strict=True))]
    for label, values, target in rows:
        cells = "".join(v.rjust(c) for v, c in zip(values, cols, strict=True))
        lines.append(label.ljust(width) + cells + (f"   target {target}" if target else ""))
    return "\n".join(lines)


def accepted(function: Callable[..., Any], wanted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The arguments of ``wanted`` (None: not given) that ``function`` takes, and the names of those it does not."""
    import inspect

    names = inspect.signature(function).parameters
    given = {k: v for k, v in wanted.items() if v is not None}
    return {k: v for k, v in given.items() if k in names}, sorted(k for k in given if k not in names)
