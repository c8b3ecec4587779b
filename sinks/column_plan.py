"""The shape of a compiled column decoder: which list holds what, and how the lists become Arrow arrays.

:func:`.avro_columns.compile_columns` numbers the decoder's lists (*slots*)
and returns a :class:`Plan`; :mod:`.columns` builds the arrays from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = ["Leaf", "Nest", "Node", "Plan", "Struct"]


@dataclass(frozen=True)
class Leaf:
    """One Arrow array of ``type`` from the list in ``slot`` (None for a null)."""

    slot: int
    type: pa.DataType


@dataclass(frozen=True)
class Struct:
    """A struct array of its children; ``mask`` is the slot of its null flags (None: never null)."""

    type: pa.DataType
    children: tuple[Node, ...]
    mask: int | None


@dataclass(frozen=True)
class Nest:
    """A list (``children`` = item) or map (key, value) array: ``offsets`` slot starts at ``[0]``."""

    type: pa.DataType
    children: tuple[Node, ...]
    offsets: int
    mask: int | None


Node = Leaf | Struct | Nest


@dataclass(frozen=True)
class Plan:
    """A compiled decoder: ``bind(*lists)`` returns ``decode(data, start, max_string, max_items)``."""

    columns: tuple[Node, ...]
    slots: int
    offsets: tuple[int, ...]
    bind: Any
    source: str
