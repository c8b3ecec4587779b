"""The documentation: the README's two commands, and the MkDocs site in docs/ that builds with --strict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TWO_COMMANDS = [
    "pip install -c constraints.txt -e . && preflog up --demo --duration 30",
    'pip install -c constraints.txt -e ".[test]" && pytest',
]


def nav_pages(node: Any) -> list[str]:
    """Every page a MkDocs nav names, at any depth."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in nav_pages(value)]
    return []


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """Strict: a broken link, a missing anchor or a page left out of the nav fails the build."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    built = subprocess.run(
        [*command, "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    assert len(listed) == len(set(listed))


def test_the_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first = re.search(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert first is not None
    assert first.group(1).splitlines() == TWO_COMMANDS
    assert text.startswith("# preflog\n\n```bash\n")
