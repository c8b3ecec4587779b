"""The report as people read it: summaries under plain labels, and legends beside the charts, not on them."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pytest

from preflog.dataset.select import Selection
from preflog.report.build import Report, report
from preflog.report.charts import DRAW, _plt
from preflog.report.figure import Figure

from .report_helpers import known_log


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("report")
    return report(known_log(tmp / "log"), tmp / "out", Selection(), rounds=20)


def test_the_summaries_have_plain_labels_and_yes_or_no(made: Report) -> None:
    html = made.html.read_text()
    labels = re.findall(r"<dt>(.*?)</dt>", html)
    shown = set(labels) | set(re.findall(r"<dd>(.*?)</dd>", html))
    assert not {"p50_s", "p99_s", "bootstrap_rounds", "decided", "length_controlled", "True", "False"} & shown
    assert not [label for label in labels if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", label)]  # no snake_case key
    for label in ("median seconds to feedback", "bootstrap rounds", "decided (the interval excludes 50%)",
                  "length-controlled win rate", "inferences without feedback"):  # fmt: skip
        assert label in labels, label
    ab = html[html.index('<article id="ab">') :]
    decided = ab.index("<dt>decided (the interval excludes 50%)</dt>")
    assert ab[decided:].split("<dd>", 1)[1].startswith(("yes<", "no<"))
    assert re.search(r"<td>(yes|no)</td>", html) and "<td>True</td>" not in html  # the data tables too


def _legend_beside(fig: Any) -> tuple[Any, Any]:
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    return ax, legend.get_window_extent()


@pytest.mark.parametrize("name", ["position_bias", "join_latency", "ab", "health", "length_bias_over_time"])
def test_a_legend_covers_no_bar_and_sits_outside_the_plot(made: Report, name: str) -> None:
    figure = next(f for f in made.figures() if f.name == name)
    if name == "position_bias":  # the known log has no candidate positions to compare: tall bars of two sources
        rows = [{"source": source, "candidate_index": i, "win_rate": rate}
                for source in ("END_USER", "HUMAN_ANNOTATOR") for i, rate in enumerate((0.95, 0.9, 0.97))]  # fmt: skip
        figure = Figure(name, figure.title, pa.Table.from_pylist(rows))
    assert not figure.empty
    plt = _plt()
    fig = DRAW[name](figure, plt)
    try:
        ax, box = _legend_beside(fig)
        assert box.x0 >= ax.get_window_extent().x1  # right of the plot area, where nothing is drawn
        bars = [p.get_window_extent() for p in ax.patches if p.get_width() and p.get_height()]
        assert not [bar for bar in bars if box.overlaps(bar)]
    finally:
        plt.close(fig)
