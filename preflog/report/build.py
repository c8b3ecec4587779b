"""``preflog report``: compute every figure, draw it, and write one self-contained HTML file with the data beside it.

The folder holds ``report.html`` (charts inline as SVG, no script, no network), ``summary.json``
(every figure's headline numbers, notes and flags) and ``figures/{name}.parquet`` and
``.json`` (the data each chart draws, for notebooks).

None of them holds a text of the log: the figures are counts, rates and lengths by model, source, kind,
index and time (:mod:`.privacy`: what consent, retention and erasure leave out, counted in the summary).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from preflog.dataset.select import Selection
from preflog.errors import PreflogError

from .agreement import human_agreement, reward_model_agreement
from .bias import length_bias, position_bias
from .charts import draw
from .cohorts import MINIMUM, cohort_figures
from .data import FILTERS, Inputs, duckdb_share, load
from .figure import Figure
from .health import coverage, health, join_latency
from .html import page
from .models import ab_tests, leaderboard
from .privacy import Privacy

__all__ = ["SECTIONS", "Report", "report"]

#: the report's sections, in order: (title, what it answers)
SECTIONS: dict[str, str] = {
    "Leaderboard": "Which model or version do judges prefer, when two are compared on the same request?",
    "A/B": "Is B better than A, for each source of feedback, and is the sample large enough to tell?",
    "Bias monitors": "Do judges prefer longer answers, or a position, beyond what quality explains?",
    "Agreement": "Does the reward model agree with people, and do people agree with each other?",
    "Coverage and health": "How much feedback does an inference get, how late, and what failed to pair?",
    "Cohorts": "How much do one person's preferences differ from everyone else's?",
}


@dataclass
class Report:
    """The figures of a report by section, and where it was written."""

    sections: dict[str, list[Figure]]
    folder: Path
    meta: dict[str, Any]

    @property
    def html(self) -> Path:
        return self.folder / "report.html"

    def figures(self) -> list[Figure]:
        return [f for figures in self.sections.values() for f in figures]


def _compute(
    inputs: Inputs, a: str | None, b: str | None, rounds: int, seed: int, minimum: int = MINIMUM
) -> dict[str, list[Figure]]:
    steps: dict[str, Callable[[], list[Figure]]] = {
        "Leaderboard": lambda: list(leaderboard(inputs, rounds=rounds, seed=seed)),
        "A/B": lambda: [ab_tests(inputs, a, b)],
        "Bias monitors": lambda: [*length_bias(inputs), position_bias(inputs)],
        "Agreement": lambda: [reward_model_agreement(inputs), human_agreement(inputs)],
        "Coverage and health": lambda: [coverage(inputs), join_latency(inputs), health(inputs)],
        "Cohorts": lambda: cohort_figures(inputs, minimum),
    }
    return {section: step() for section, step in steps.items()}


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def report(
    url: str,
    folder: Path,
    selection: Selection,
    a: str | None = None,
    b: str | None = None,
    rounds: int = 200,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
    memory_limit: str | int | None = None,
    settings: Any = None,
    keyring: Any = None,
    now: datetime | None = None,
    min_per_subject: int = MINIMUM,
) -> Report:
    """Compute, draw and write the report of the audit log at ``url`` into ``folder`` (files there are replaced).

    ``memory_limit`` bounds the report's memory ("512MB", "2GB", "10%" of RAM; default
    :data:`preflog.sinks.scan.DEFAULT_MEMORY`): the log is read once, in a streaming fashion, into narrow
    tables of a temporary database, and every figure is an aggregate over them, DuckDB spilling to disk
    beyond its share (:func:`.data.duckdb_share`).

    The report reads only the pairs and signals whose consent allows analytics, whose retention has not run
    out at ``now`` (default: the time it starts) and whose subject was not erased (:mod:`.privacy`); what it
    leaves out is counted in ``meta["privacy"]`` (absent when nothing was and the log was not sealed).
    ``settings`` gives what unstated consent allows (``privacy.unstated_consent``; default: everything) and
    the keys that open a sealed log (default: the environment's), unless ``keyring`` (a
    :class:`preflog.privacy.keyring.Keyring`) is given. Subjects with at least ``min_per_subject`` judgements
    are cohorts of their own in the Cohorts section (:mod:`.cohorts`).

    Raises:
        FileNotFoundError: the log has no pairs table.
        ValueError: ``memory_limit`` is not a size, or below the least :func:`preflog.sinks.scan.memory_limit` takes.
        PreflogError: DuckDB ran out of memory within the limit (a larger limit is the fix).
        SealedLogError: the log holds sealed fields and no keys open them (the message names the settings).
    """
    import duckdb

    privacy = Privacy.of(settings, now, keyring)
    try:
        inputs = load(url, selection, storage_options, memory_limit, privacy)
        try:
            pairs = inputs.rows("SELECT count(*), min(feedback_time), max(feedback_time) FROM pairs")[0]
            sections = _compute(inputs, a, b, rounds, seed, min_per_subject)
        finally:
            inputs.close()
    except duckdb.OutOfMemoryException as exc:
        share = f"{duckdb_share(memory_limit) / 2**20:.0f} MiB"
        raise PreflogError(
            f"the report needs more memory than DuckDB's {share} of the limit {memory_limit or 'default'}: give a "
            f"larger --memory-limit (PREFLOG_MEMORY_LIMIT). DuckDB: {str(exc).splitlines()[0]}"
        ) from exc
    meta = {
        "log": url,
        "generated_at": privacy.purpose.now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "pairs": int(pairs[0]),
        "from": pairs[1].strftime("%Y-%m-%d %H:%M UTC") if pairs[1] else None,
        "to": pairs[2].strftime("%Y-%m-%d %H:%M UTC") if pairs[2] else None,
        "selection": {k: getattr(selection, k) for k in FILTERS if getattr(selection, k) not in (None, ())},
    }
    left_out = privacy.meta()
    if left_out is not None:  # a log without privacy facts reports as before
        meta["privacy"] = left_out
    done = Report(sections, folder, meta)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"meta": meta, "figures": {}}
    for figure in done.figures():
        figure.chart = draw(figure)
        pq.write_table(figure.table, folder / "figures" / f"{figure.name}.parquet")
        rows = json.dumps(_plain(figure.table.to_pylist()), default=str, indent=1)
        (folder / "figures" / f"{figure.name}.json").write_text(rows + "\n")
        summary["figures"][figure.name] = _plain(
            {"title": figure.title, "summary": figure.summary, "notes": figure.notes, "flags": figure.flags}
        )
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    done.html.write_text(page(done.sections, SECTIONS, meta), encoding="utf-8")
    return done
