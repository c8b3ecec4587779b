"""A trainer's loop for the kill -9 test of stream_pairs: each pair's id and the token after it, one line each.

    python tests/unit/stream_consumer.py LOG_URL OUT_FILE

On start it resumes from the token of the last whole line of OUT_FILE (a line cut by a kill is ignored), so
the file's ids are what the trainer saw, each exactly once if stream_pairs keeps its promise.
"""

from __future__ import annotations

import os
import sys

import preflog


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    token = None
    if os.path.exists(out):
        with open(out, "rb") as f:
            whole = f.read().rsplit(b"\n", 1)[0]  # drop a cut last line
        if whole:
            token = whole.rsplit(b"\n", 1)[-1].split(b"\t", 1)[1].decode()
        with open(out, "r+b") as f:
            f.truncate(len(whole) + 1 if whole else 0)
    stream = preflog.stream_pairs(url, resume=token, poll_s=0.05, batch_rows=7, keys="sealed")
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for pair in stream:
        os.write(fd, f"{pair['pair_id']}\t{stream.token()}\n".encode())  # one write: whole or not at all


if __name__ == "__main__":
    main()
