"""The installed preflog is the one imported, wherever the user stands: also in the folder that holds the clone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_preflog_from_the_folder_that_holds_a_clone_named_preflog_finds_the_package(tmp_path: Path) -> None:
    """A clone named preflog has no __init__.py: found first on sys.path, it must not shadow the package."""
    (tmp_path / "preflog").symlink_to(REPO, target_is_directory=True)  # as after `git clone ... preflog`
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import preflog; print(preflog.__file__); print(preflog.read_pairs.__name__)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    where, name = done.stdout.split()
    assert Path(where).name == "__init__.py" and Path(where).parent.name == "preflog" and name == "read_pairs"
