"""The report as one self-contained HTML page: inline CSS and SVG charts, no script, nothing fetched."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from .figure import Figure
from .privacy import said

__all__ = ["page"]

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; }
body { background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 24px 40px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 2px 0; color: #d0d7de; }
main { max-width: 1100px; margin: 0 auto; padding: 8px 40px 60px; }
section.group > h2 { margin-top: 36px; border-bottom: 2px solid #d0d7de; padding-bottom: 4px; }
section.group > p.question { color: #57606a; margin-top: -4px; }
article { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
article h3 { margin: 0 0 8px; font-size: 17px; }
.chart svg { max-width: 100%; height: auto; }
.flag { background: #fff8c5; border-left: 4px solid #d4a72c; padding: 6px 10px; margin: 6px 0; }
.note { color: #57606a; margin: 4px 0; }
dl.summary { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 8px 0; }
dl.summary div { min-width: 120px; }
dl.summary dt { color: #57606a; font-size: 12px; }
dl.summary dd { margin: 0; font-weight: 600; }
details { margin-top: 8px; }
table { border-collapse: collapse; font-size: 13px; margin-top: 6px; }
th, td { border-bottom: 1px solid #eaeef2; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""


#: the summaries' keys (summary.json keeps them) as the page names them; other snake_case keys lose their underscores
LABELS = {
    "p50_s": "median seconds to feedback",
    "p90_s": "90th percentile, seconds to feedback",
    "p99_s": "99th percentile, seconds to feedback",
    "bootstrap_rounds": "bootstrap rounds",
    "top": "top model",
    "a": "model A",
    "b": "model B",
    "rate": "win rate of model B",
    "low": "95% interval from",
    "high": "95% interval to",
    "n": "comparisons",
    "decided": "decided (the interval excludes 50%)",
    "length_controlled": "length-controlled win rate",
    "kappa": "Cohen's kappa",
    "krippendorff_alpha": "Krippendorff's alpha",
    "unanimous": "share unanimous",
    "min_per_subject": "least pairs per subject",
    "population_share": "longer-chosen share, everyone",
}
#: where one key means something else in one figure
FIGURE_LABELS = {("join_latency", "n"): "judgements timed"}


def _label(figure: str, key: str) -> str:
    """A summary key as the page names it: ``p50_s`` -> "median seconds to feedback"."""
    if (figure, key) in FIGURE_LABELS:
        return FIGURE_LABELS[(figure, key)]
    if key in LABELS:
        return LABELS[key]
    return key.replace("_", " ") if key.isidentifier() and key.islower() else key  # "source:END_USER" stays


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return escape(json.dumps(value, default=str))
    return escape(str(value))


def _summary(figure: str, summary: dict[str, Any]) -> str:
    items = [f"<div><dt>{escape(_label(figure, str(k)))}</dt><dd>{_number(v)}</dd></div>" for k, v in summary.items()]
    return f'<dl class="summary">{"".join(items)}</dl>' if items else ""


def _table(figure: Figure, limit: int = 30) -> str:
    if figure.empty:
        return ""
    rows = figure.table.slice(0, limit).to_pylist()
    head = "".join(f"<th>{escape(c)}</th>" for c in figure.table.column_names)
    body = "".join("<tr>" + "".join(f"<td>{_number(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    more = f" (first {limit} of {figure.table.num_rows:,})" if figure.table.num_rows > limit else ""
    return (
        f"<details><summary>data{more}: figures/{escape(figure.name)}.parquet and .json</summary>"
        f"<table><tr>{head}</tr>{body}</table></details>"
    )


def _article(figure: Figure) -> str:
    parts = [f'<article id="{escape(figure.name)}"><h3>{escape(figure.title)}</h3>']
    parts += [f'<div class="flag">⚑ {escape(flag)}</div>' for flag in figure.flags]
    parts.append(_summary(figure.name, figure.summary))
    if figure.chart:
        parts.append(f'<div class="chart">{figure.chart}</div>')
    parts += [f'<p class="note">{escape(note)}</p>' for note in figure.notes]
    parts.append(_table(figure))
    parts.append("</article>")
    return "".join(parts)


def _privacy(meta: dict[str, Any]) -> str:
    """The line of what consent, retention and erasure left out ("" when nothing was: a page as before)."""
    line = said(meta.get("privacy"))
    return "" if line is None else f'<p id="privacy">{escape(line)}</p>'


def page(sections: dict[str, list[Figure]], questions: dict[str, str], meta: dict[str, Any]) -> str:
    """The whole HTML document."""
    flags = [flag for figures in sections.values() for f in figures for flag in f.flags]
    selection = ", ".join(f"{k}={v}" for k, v in meta["selection"].items()) or "everything"
    header = (
        f"<header><h1>preflog report</h1><p>{meta['pairs']:,} preference pairs from {escape(str(meta['from']))} "
        f"to {escape(str(meta['to']))} · log {escape(meta['log'])}</p>"
        f"<p>selection: {escape(selection)} · generated {escape(meta['generated_at'])}</p>{_privacy(meta)}</header>"
    )
    body = ["<main>"]
    if flags:
        body.append('<section class="group"><h2>Flags</h2>')
        body += [f'<div class="flag">⚑ {escape(flag)}</div>' for flag in flags]
        body.append("</section>")
    for section, figures in sections.items():
        body.append(f'<section class="group"><h2>{escape(section)}</h2>')
        body.append(f'<p class="question">{escape(questions.get(section, ""))}</p>')
        body += [_article(f) for f in figures]
        body.append("</section>")
    body.append("</main>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>preflog report</title><style>{CSS}</style></head><body>{header}{''.join(body)}</body></html>\n"
    )
