"""The top of a py-spy profile: the functions with the largest share of samples, inclusive and self.

    py-spy record --pid PID --format raw -o profile.txt     # or processor_throughput.py --profile DIR
    python benchmarks/profile_top.py profile.txt [--top 12] [--match preflog]

A raw py-spy profile has one line per distinct stack: ``frame;frame;...;frame COUNT``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LOCATION = re.compile(r" \((?:.*/)?(?:site-packages/)?([^()]*?):\d+\)$")


def _short(frame: str) -> str:
    """``join (processors/app.py:112)`` -> ``join (app.py)``: a function and its file, without the line."""
    return _LOCATION.sub(lambda m: f" ({m[1].split('/')[-1]})", frame)


def top(path: Path, n: int, match: str | None) -> str:
    """The ``n`` functions with the most samples, inclusive and self, as text."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_short(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return f"{path}: no samples"

    def rows(counter: Counter[str]) -> list[str]:
        chosen = [(f, c) for f, c in counter.most_common() if match is None or match in f][:n]
        return [f"  {100 * c / total:5.1f}%  {f}" for f, c in chosen]

    return "\n".join([f"{path.name}: {total} samples", "inclusive:", *rows(inclusive), "self:", *rows(own)])


def main() -> None:
    """Print the top of each profile given."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--match", help="only frames whose name or file contains this")
    args = parser.parse_args()
    for p in args.profiles:
        print(top(p, args.top, args.match))


if __name__ == "__main__":
    main()
