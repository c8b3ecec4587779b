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

from preflog.dataset.select import Selection, _where
from preflog.sinks.read import read_table

__all__ = ["Inputs", "load"]

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
    FROM raw_pairs WHERE {{where}}
"""
_SIGNALS = f"""
    SELECT signal_id, request_id, feedback_id, CAST(feedback_kind AS VARCHAR) AS kind,
           CAST(source.type AS VARCHAR) AS source, explicit, label, {_MODEL.format(m="model")} AS model_id,
           feedback_time, inference_time, epoch_ms(feedback_time) - epoch_ms(inference_time) AS join_latency_ms
    FROM raw_signals WHERE {{where}}
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

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    where, args = _where(selection)
    con.register("raw_pairs", _read(url, "pairs", storage_options))
    con.register("raw_signals", _read(url, "unpaired", storage_options))
    con.execute(f"CREATE TEMP TABLE pairs AS {_PAIRS.format(where=where)}", args)
    con.execute(f"CREATE TEMP TABLE signals AS {_SIGNALS.format(where=where)}", args)
    con.unregister("raw_pairs")
    con.unregister("raw_signals")
    dates, date_args = _dates(selection, "event_time")
    con.register("raw_unmatched", _read(url, "unmatched", storage_options))
    con.execute(
        "CREATE TEMP TABLE unmatched AS SELECT CAST(reason AS VARCHAR) AS reason, record_type, request_id, "
        f"feedback_id, event_time FROM raw_unmatched WHERE {dates}",
        date_args,
    )
    dates, date_args = _dates(selection, "failed_at")
    con.register("raw_dead", _read(url, "dead_letter", storage_options))
    con.execute(
        "CREATE TEMP TABLE dead_letters AS SELECT error_class, stage, source_offset.topic AS topic, failed_at "
        f"FROM raw_dead WHERE {dates}",
        date_args,
    )
    con.unregister("raw_unmatched")
    con.unregister("raw_dead")
    return Inputs(con, selection)


def _dates(s: Selection, column: str) -> tuple[str, list[Any]]:
    parts, args = ["TRUE"], []
    if s.start:
        parts.append(f"CAST({column} AS DATE) >= CAST(? AS DATE)")
        args.append(s.start)
    if s.end:
        parts.append(f"CAST({column} AS DATE) <= CAST(? AS DATE)")
        args.append(s.end)
    return " AND ".join(parts), args
