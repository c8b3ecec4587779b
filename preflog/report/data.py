"""The report's inputs: the audit log's tables as DuckDB views, selected like a dataset build.

``pairs`` has one row per preference pair with flat columns: the model (``name@version``) of
the request and of each side, the source type and id, the kind, both texts' lengths and
indices, times and the join latency. ``signals`` (ratings and implicit signals), ``unmatched``
and ``dead_letters`` back the coverage and health figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from preflog.dataset.select import Selection, date_filter, judgement_filter
from preflog.sinks.read import read_table

__all__ = ["FILTERS", "Inputs", "load", "narrowed"]

#: the selection fields a report takes (dates, and the judgement-level filters of a dataset build)
FILTERS = ("start", "end", "models", "model_versions", "sources", "kinds", "tenants", "explicit")


def narrowed(s: Selection) -> bool:
    """Whether ``s`` filters by more than dates (the unmatched and dead-letter tables are filtered by date only)."""
    return any(getattr(s, k) not in (None, ()) for k in FILTERS if k not in ("start", "end"))

_MODEL = "{m}.name || '@' || coalesce({m}.version, '-')"
_PAIRS = f"""
    SELECT pair_id, request_id, feedback_id, CAST(feedback_kind AS VARCHAR) AS kind,
           CAST(source.type AS VARCHAR) AS source, coalesce(source.id, '-') AS source_id,
           coalesce(source.version, '-') AS source_version, explicit,
           {_MODEL.format(m="model")} AS model_id,
           {_MODEL.format(m="coalesce(chosen_model, model)")} AS chosen_id,
           {_MODEL.format(m="coalesce(rejected_model, model)")} AS rejected_id,
           chosen_index, rejected_index, length(chosen) AS chosen_len, length(rejected) AS rejected_len,
           margin, chosen_score, rejected_score, feedback_time, inference_time, join_latency_ms,
           context.tenant AS tenant
    FROM raw WHERE {{where}}
"""
_SIGNALS = f"""
    SELECT signal_id, request_id, feedback_id, CAST(feedback_kind AS VARCHAR) AS kind,
           CAST(source.type AS VARCHAR) AS source, explicit, label, {_MODEL.format(m="model")} AS model_id,
           feedback_time, inference_time, epoch_ms(feedback_time) - epoch_ms(inference_time) AS join_latency_ms
    FROM raw WHERE {{where}}
"""


@dataclass
class Inputs:
    """A DuckDB connection with the views ``pairs``, ``signals``, ``unmatched`` and ``dead_letters``."""

    con: Any  # duckdb.DuckDBPyConnection
    selection: Selection

    def rows(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of ``query`` as tuples."""
        result: list[tuple[Any, ...]] = self.con.execute(query, list(args)).fetchall()
        return result

    def table(self, query: str, *args: Any) -> pa.Table:
        """The result of ``query`` as an Arrow table."""
        result = self.con.sql(query, params=list(args)).to_arrow_table()
        return result if isinstance(result, pa.Table) else result.read_all()

    def close(self) -> None:
        self.con.close()


def _read(url: str, table: str, storage_options: dict[str, Any] | None) -> pa.Table:
    try:
        return read_table(url, table, storage_options=storage_options)
    except FileNotFoundError:
        if table == "pairs":
            raise
        return read_table(url, table, files=[], storage_options=storage_options)  # an empty table of its schema


def load(url: str, selection: Selection, storage_options: dict[str, Any] | None = None) -> Inputs:
    """The audit log at ``url`` as the report's views, with ``selection``'s judgement-level filters applied.

    Raises:
        FileNotFoundError: the log has no pairs table.
    """
    import duckdb

    where, args = judgement_filter(selection)
    unmatched, unmatched_args = date_filter(selection, "event_time")
    dead, dead_args = date_filter(selection, "failed_at")
    views = (  # (view, table of the log, query over it as "raw", its arguments)
        ("pairs", "pairs", _PAIRS.format(where=where), args),
        ("signals", "unpaired", _SIGNALS.format(where=where), args),
        ("unmatched", "unmatched", "SELECT CAST(reason AS VARCHAR) AS reason, record_type, request_id, feedback_id, "
         f"event_time FROM raw WHERE {unmatched}", unmatched_args),
        ("dead_letters", "dead_letter", "SELECT error_class, stage, source_offset.topic AS topic, failed_at "
         f"FROM raw WHERE {dead}", dead_args),
    )  # fmt: skip
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for view, table, query, query_args in views:
        con.register("raw", _read(url, table, storage_options))
        con.execute(f"CREATE TEMP TABLE {view} AS {query}", query_args)
        con.unregister("raw")
    return Inputs(con, selection)

