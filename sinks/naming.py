"""Where a batch of records lands: Hive-style partition folders and offset-range file names.

    {root}/{table}/dt=YYYY-MM-DD[/model=NAME]/{topic}+{partition}[+i{incarnation:04d}]+{first:019d}-{last:019d}.parquet

The name says what the file holds, so a replay of the same offsets lands on
the same name (Kafka Connect and Quix name files the same way). Offsets
start again from 0 when a topic is deleted and recreated (or a broker starts
empty): each such *incarnation* of a topic after the first gets its own
number in the name, so its files can never collide with the earlier ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from preflog.schemas.tables import TABLES

__all__ = ["FileName", "file_name", "parse_file_name", "partition_dir"]

NAME = re.compile(
    r"^(?P<topic>[^+/]+)\+(?P<partition>\d+)(?:\+i(?P<incarnation>\d{4,}))?\+(?P<first>\d{19})-(?P<last>\d{19})\.parquet$"
)


@dataclass(frozen=True)
class FileName:
    """The parts of a data file name."""

    topic: str
    partition: int
    first: int
    last: int
    incarnation: int = 0


def file_name(topic: str, partition: int, first: int, last: int, incarnation: int = 0) -> str:
    """``{topic}+{partition}+{first:019d}-{last:019d}.parquet``.

    A topic's second and later incarnations get ``+i{incarnation:04d}`` after the partition.
    """
    tag = f"+i{incarnation:04d}" if incarnation else ""
    return f"{topic}+{partition}{tag}+{first:019d}-{last:019d}.parquet"


def parse_file_name(name: str) -> FileName | None:
    """The parts of a data file name, or None for any other file."""
    m = NAME.match(name.rsplit("/", 1)[-1])
    if m is None:
        return None
    return FileName(m["topic"], int(m["partition"]), int(m["first"]), int(m["last"]), int(m["incarnation"] or 0))


def partition_dir(table: str, record: dict[str, Any], partition_by: list[str]) -> str:
    """``{table}/dt=.../[col=value/...]`` for one record."""
    when: datetime = record[TABLES[table].time_column]
    parts = [table, f"dt={when.date().isoformat()}"]
    for column in partition_by:
        value: Any = record
        for key in column.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        parts.append(f"{column.replace('.', '_')}={quote(str(value), safe='') if value is not None else '__null__'}")
    return "/".join(parts)
