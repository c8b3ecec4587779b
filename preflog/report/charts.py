"""The report's charts, drawn by matplotlib as inline SVG (no file, no network): one function per figure."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from .figure import Figure

__all__ = ["draw"]

PALETTE = ["#3b6ea8", "#e07b39", "#5a9e4b", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#8c8c8c"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.fonttype": "none", "axes.titleweight": "bold"})  # fmt: skip
    return plt


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    _plt().close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend right of the plot area, where it covers no bar, line or point."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, **kwargs)


def _leaderboard(f: Figure, plt: Any) -> Any:
    rows = f.table.to_pylist()[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    y = np.arange(len(rows))
    x = np.array([r["strength"] for r in rows])
    err = np.array([[r["strength"] - r["low"] for r in rows], [r["high"] - r["strength"] for r in rows]])
    ax.errorbar(x, y, xerr=err, fmt="o", color=PALETTE[0], capsize=4)
    ax.set_yticks(y, [f"{r['model']}  ({r['wins'] + r['losses']} pairs)" for r in rows])
    ax.set_xlabel("Bradley-Terry strength, Elo scale (95% bootstrap interval)")
    ax.set_title("Leaderboard")
    return fig


def _win_matrix(f: Figure, plt: Any) -> Any:
    rows = f.table.to_pylist()
    models = list(dict.fromkeys(r["model"] for r in rows))
    n = len(models)
    grid = np.full((n, n), np.nan)
    for r in rows:
        grid[models.index(r["model"]), models.index(r["opponent"])] = r["win_rate"]
    fig, ax = plt.subplots(figsize=(1.3 * n + 2.5, 1.0 * n + 1.5))
    image = ax.imshow(grid, cmap="RdBu", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0%}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(n), models, rotation=30, ha="right")
    ax.set_yticks(range(n), models)
    ax.set_xlabel("opponent")
    ax.set_ylabel("model")
    ax.set_title("Win rate, row against column")
    fig.colorbar(image, ax=ax, label="win rate")
    return fig


def _intervals(rows: list[dict[str, Any]], label: str, value: str, title: str, xlabel: str, plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.3))
    y = np.arange(len(rows))[::-1]
    x = np.array([r[value] for r in rows], dtype=float)
    err = np.array([x - [r["low"] for r in rows], [r["high"] for r in rows] - x])
    ax.errorbar(x, y, xerr=err, fmt="o", color=PALETTE[0], capsize=4)
    ax.axvline(0.5, color="#888", linestyle="--", linewidth=1)
    ax.set_yticks(y, [r[label] for r in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _ab(f: Figure, plt: Any) -> Any:
    s = f.summary
    rows = [r | {"label": f"{r['source']} (n={r['n']})"} for r in f.table.to_pylist()]
    fig = _intervals(rows, "label", "rate", f"{s['b']} against {s['a']}", f"win rate of {s['b']}", plt)
    ax = fig.axes[0]
    ax.scatter([r["length_controlled"] for r in rows], np.arange(len(rows))[::-1], marker="x", color=PALETTE[1],
               label="length-controlled", zorder=3)  # fmt: skip
    _legend_outside(ax)
    return fig


def _length(f: Figure, plt: Any) -> Any:
    rows = [r | {"label": f"{r['by']}: {r['value']} (n={r['pairs']})"} for r in f.table.to_pylist()]
    title, xlabel = "Chosen answer is the longer one", "share of pairs (0.5: no preference)"
    return _intervals(rows, "label", "share", title, xlabel, plt)


def _over_time(f: Figure, plt: Any, series: str, value: Callable[[dict[str, Any]], float], ylabel: str) -> Any:
    rows = f.table.to_pylist()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, name in enumerate(sorted({r[series] for r in rows})):
        part = [r for r in rows if r[series] == name]
        ax.plot([r["time"] for r in part], [value(r) for r in part], marker="o", markersize=3, label=name,
                color=PALETTE[i % len(PALETTE)])  # fmt: skip
    ax.set_ylabel(ylabel)
    ax.set_xlabel("time (UTC)")
    _legend_outside(ax)
    fig.autofmt_xdate()
    return fig


def _length_over_time(f: Figure, plt: Any) -> Any:
    fig = _over_time(f, plt, "source", lambda r: r["longer_chosen"] / r["pairs"], "longer-chosen share")
    fig.axes[0].axhline(0.5, color="#888", linestyle="--", linewidth=1)
    fig.axes[0].set_title("Longer-chosen share over time")
    return fig


def _position(f: Figure, plt: Any) -> Any:
    rows = f.table.to_pylist()
    sources = sorted({r["source"] for r in rows})
    indices = sorted({r["candidate_index"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(sources), 1)
    for k, source in enumerate(sources):
        rate = {r["candidate_index"]: r["win_rate"] for r in rows if r["source"] == source}
        ax.bar(np.array(indices) + k * width, [rate.get(i, 0) for i in indices], width, label=source,
               color=PALETTE[k % len(PALETTE)])  # fmt: skip
    ax.set_xticks(np.array(indices) + width * (len(sources) - 1) / 2, [str(i) for i in indices])
    ax.axhline(0.5, color="#888", linestyle="--", linewidth=1)
    ax.set_xlabel("candidate index")
    ax.set_ylabel("win rate (chosen / in a pair)")
    ax.set_title("Win rate by candidate position")
    _legend_outside(ax, title="feedback source")
    return fig


def _bars(labels: list[str], values: list[float], title: str, xlabel: str, plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(labels) + 1.3))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color=PALETTE[0])
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _rm(f: Figure, plt: Any) -> Any:
    rows = f.table.to_pylist()
    labels = [f"{r['reward_model']} vs {r['human_source']} (n={r['comparisons']}, kappa {r['kappa']:.2f})"
              for r in rows]  # fmt: skip
    fig = _bars(labels, [r["accuracy"] for r in rows], "Reward model agrees with people", "accuracy", plt)
    fig.axes[0].set_xlim(0, 1)
    return fig


def _humans(f: Figure, plt: Any) -> Any:
    rows = f.table.to_pylist()
    counts: dict[str, int] = {}
    for r in rows:  # one row per panel of verdicts, with its number of comparisons
        key = f"{r['annotators']} annotators, {'unanimous' if r['unanimous'] else 'split'}"
        counts[key] = counts.get(key, 0) + r["comparisons"]
    alpha = f.summary.get("krippendorff_alpha", float("nan"))
    title = f"Annotators on the same comparison (Krippendorff's alpha = {alpha:.2f})"
    return _bars(sorted(counts), [counts[k] for k in sorted(counts)], title, "comparisons", plt)


def _coverage(f: Figure, plt: Any) -> Any:
    rows = f.table.to_pylist()
    return _bars([f"{r['kind']} / {r['source']}" for r in rows], [r["per_inference"] for r in rows],
                 "Judgements per inference", "judgements per inference", plt)  # fmt: skip


def _latency(f: Figure, plt: Any) -> Any:
    seconds = np.array(f.table.column("seconds").to_pylist(), dtype=float)
    counts = np.array(f.table.column("judgements").to_pylist(), dtype=float)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.bar(seconds, counts, width=seconds * (10**0.1 - 1), align="edge", color=PALETTE[0])  # one bar per bucket
    ax.set_xscale("log")
    for q, name, style in (("p50_s", "median", "--"), ("p99_s", "99th percentile", ":")):
        if q in f.summary:
            label = f"{name} {f.summary[q]:.1f} s"
            ax.axvline(max(f.summary[q], 1e-3), color=PALETTE[1], linestyle=style, label=label)
    ax.set_xlabel("seconds from inference to feedback (log scale)")
    ax.set_ylabel("judgements")
    ax.set_title("Join latency")
    _legend_outside(ax)
    return fig


def _health(f: Figure, plt: Any) -> Any:
    fig = _over_time(f, plt, "what", lambda r: max(r["rate"], 1e-4), "share of records (log scale)")
    fig.axes[0].set_yscale("log")
    fig.axes[0].set_ylim(1e-4 * 0.8, 1.2)
    fig.axes[0].set_title("Joined, unmatched and dead-lettered records")
    return fig


def _cohorts(f: Figure, plt: Any) -> Any:
    rows = sorted(f.table.to_pylist(), key=lambda r: -abs(r["difference"]))[:25]  # the 25 that differ most
    rows = [
        r | {"label": f"{r['cohort']} (n={r['pairs']})", "low": r["diff_low"], "high": r["diff_high"]} for r in rows
    ]
    fig = _intervals(rows, "label", "difference", "Longer-chosen share, subject minus everyone else",
                     "difference of shares (0: like everyone else; 95% Newcombe interval)", plt)  # fmt: skip
    fig.axes[0].set_xlim(-1, 1)
    fig.axes[0].lines[-1].set_xdata([0, 0])  # the reference line at no difference
    return fig


DRAW: dict[str, Callable[[Figure, Any], Any]] = {
    "leaderboard": _leaderboard,
    "win_matrix": _win_matrix,
    "ab": _ab,
    "length_bias": _length,
    "length_bias_over_time": _length_over_time,
    "position_bias": _position,
    "rm_agreement": _rm,
    "human_agreement": _humans,
    "coverage": _coverage,
    "join_latency": _latency,
    "health": _health,
    "subject_length_preference": _cohorts,
}


def draw(figure: Figure) -> str:
    """``figure``'s chart as an SVG element ("" when it has nothing to draw)."""
    if figure.empty or figure.name not in DRAW:
        return ""
    return _svg(DRAW[figure.name](figure, _plt()))
