"""``preflog erase`` ends cleanly: no Arrow thread left holding Python buffers when the interpreter shuts down.

An export's subjects file was read with pre-buffering (pyarrow's default): Arrow I/O threads read the Python
file and an Arrow thread could release those buffers after the command ended, taking the GIL of a finalised
interpreter: "terminate called without an active exception", SIGABRT (exit 134), now and then.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from preflog.privacy import lineage
from preflog.privacy.keys import generate_master
from preflog.privacy.pseudonym import pseudonym

SECRET = secrets.token_hex(32)


class _Recording(io.FileIO):
    """A file that notes the thread of every read and seek."""

    threads: set[int]

    def read(self, size: int | None = -1) -> bytes:
        self.threads.add(threading.get_ident())
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self.threads.add(threading.get_ident())
        return super().readinto(buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.threads.add(threading.get_ident())
        return super().seek(offset, whence)


def _export(data_dir: Path, subjects: list[str]) -> None:
    output = data_dir / "export.jsonl"
    output.write_text("{}\n")
    lineage.record_export(data_dir, str(output), subjects, rows=len(subjects))


def test_an_export_s_subjects_file_is_read_in_the_calling_thread_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _export(tmp_path, [f"psn_{i:032x}" for i in range(3000)])
    threads: set[int] = set()

    @contextmanager
    def opened(path: str, mode: str = "rb", **_: Any) -> Iterator[_Recording]:
        with _Recording(path, mode) as f:
            f.threads = threads
            yield f

    monkeypatch.setattr(lineage.fsspec, "open", opened)
    found = lineage.exports_holding(tmp_path, [f"psn_{7:032x}"])
    assert [e["matched"] for e in found] == [[f"psn_{7:032x}"]]
    assert threads == {threading.get_ident()}, f"the file was read from {len(threads)} threads"


def test_erase_exits_0_without_terminate_called(tmp_path: Path) -> None:
    """Several erasures at once (the abort was a race, seen in about 1 of 20 runs under load)."""
    generate_master(tmp_path / "master.key")
    (tmp_path / "secret").write_text(SECRET + "\n")
    env = {
        **os.environ,
        "PREFLOG_PRIVACY__ENABLED": "true",
        "PREFLOG_PRIVACY__MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE": str(tmp_path / "secret"),
        "PREFLOG_PRIVACY__KEYS_DIR": str(tmp_path / "keys"),
    }
    subject = pseudonym("someone", SECRET.encode())
    runs = []
    for n in range(12):
        data_dir = tmp_path / f"data-{n}"
        (data_dir / "privacy").mkdir(parents=True)
        _export(data_dir, [subject, *(f"psn_{i:032x}" for i in range(3000))])
        args = [sys.executable, "-m", "preflog", "--data-dir", str(data_dir), "erase", "--subject", subject]
        runs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in runs:
        try:
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        said = stderr.decode(errors="replace")
        assert "terminate called" not in said, said[-2000:]
        assert proc.returncode == 0, said[-2000:]
        assert "withdrew export" in stdout.decode(errors="replace")
