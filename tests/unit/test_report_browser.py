"""The report in a real headless Chromium (Debian's package): the page renders and so does every chart.

Each chart is put in a cell of its own on a grid page and the cells are cut out of one screenshot:
a chart that did not render leaves its cell blank. The full page's screenshot is kept beside the report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from preflog.dataset.select import Selection
from preflog.report.build import report

from .report_helpers import known_log

CELL = (560, 420)
FIX = "install Debian's chromium (apt-get install chromium); .ci/run does"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail(f"no Chromium on this machine: {FIX}")
    pytest.skip(f"no Chromium on this machine: {FIX}")


def _screenshot(page: Path, png: Path, size: tuple[int, int], profile: Path) -> Image.Image:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", f"--screenshot={png}",
               page.as_uri()]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return Image.open(png).convert("RGB")


def _ink(image: Image.Image) -> float:
    """The share of pixels that are not (near) white."""
    gray = image.convert("L")
    dark = sum(count for value, count in enumerate(gray.histogram()) if value < 235)
    return dark / (image.width * image.height)


def test_the_page_and_every_chart_render_in_chromium(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    report(known_log(tmp_path / "log"), folder, Selection(), rounds=20)
    html = (folder / "report.html").read_text()
    charts = re.findall(r'<article id="([^"]+)">.*?<div class="chart">(<svg.*?</svg>)\s*</div>', html, flags=re.S)
    assert len(charts) >= 10, [name for name, _ in charts]
    columns = 2
    rows = (len(charts) + columns - 1) // columns
    cells = []
    for i, (_, svg) in enumerate(charts):
        fitted = svg.replace("<svg", '<svg width="100%" height="100%"', 1)
        left, top = (i % columns) * CELL[0], (i // columns) * CELL[1]
        style = f"position:absolute;left:{left}px;top:{top}px;width:{CELL[0]}px;height:{CELL[1]}px;overflow:hidden"
        cells.append(f'<div style="{style}">{fitted}</div>')
    grid = tmp_path / "grid.html"
    grid.write_text(f"<!DOCTYPE html><html><body style='margin:0;background:#fff'>{''.join(cells)}</body></html>")
    shot = _screenshot(grid, tmp_path / "grid.png", (CELL[0] * columns, CELL[1] * rows), tmp_path / "profile")
    for i, (name, _) in enumerate(charts):
        x, y = (i % columns) * CELL[0], (i // columns) * CELL[1]
        cell = shot.crop((x, y, x + CELL[0], y + CELL[1]))
        assert _ink(cell) > 0.02, f"{name}: its chart left its cell blank in Chromium"
        assert len(set(cell.resize((140, 105)).getdata())) > 20, f"{name}: a flat cell, no chart drawn"
    whole = _screenshot(folder / "report.html", folder / "report.png", (1200, 6000), tmp_path / "profile2")
    assert _ink(whole.crop((0, 0, 1200, 120))) > 0.5  # the dark header: the page itself rendered, CSS and all
    assert _ink(whole) > 0.05
