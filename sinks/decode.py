"""How the sink decodes a batch: framed Avro values in, :class:`~.columns.Rows` out, no dict per record.

Values framed the default way (single-object encoding) with the table's own
schema version are decoded in compiled code (:mod:`.avro_arrow`) when it is
sure of every one, else by the column decoder (:mod:`.avro_columns`), which
also only takes bodies it is sure of. Any other batch (Confluent framing, a record
of an earlier schema version, or one the column decoder does not take) is
decoded record by record by the codec into dicts, as before, so a record the
codec refuses raises its :class:`~preflog.schemas.exceptions.DecodeError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from preflog.schemas.codec import SOE_MAGIC, SingleObjectCodec

from .arrow_rows import ArrowRows
from .avro_arrow import ArrowReader
from .avro_columns import compile_columns
from .column_plan import Plan
from .columns import ColumnRows, DictRows, Rows

if TYPE_CHECKING:
    import pyarrow as pa

    from preflog.schemas.codec import Codec
    from preflog.schemas.registry import SchemaVersion

__all__ = ["BatchDecoder"]


class BatchDecoder:
    """Decodes batches of one table's records (framed bytes).

    Args:
        schema: The table's schema version (the newest of its record type).
        arrow: The Arrow schema its files are written with.
    """

    def __init__(self, schema: SchemaVersion, arrow: pa.Schema) -> None:
        self.schema = schema
        self.header = SOE_MAGIC + schema.fingerprint
        self.names = [f["name"] for f in schema.reader["fields"]]
        self.plan: Plan | None
        try:
            self.plan = compile_columns(schema.reader, arrow)
        except ValueError:  # a type the column decoder does not know: the codec decodes every batch
            self.plan = None
        self.compiled: ArrowReader | None
        try:
            self.compiled = ArrowReader(schema, self.header)
        except ValueError:  # a type the compiled reader does not know
            self.compiled = None

    def decode(self, values: Sequence[bytes], codec: Codec, topic: str) -> Rows:
        """The records of ``values``, in their order.

        Raises:
            DecodeError: a record the codec refuses.
        """
        if self._ours(codec) and self.compiled is not None:
            table = self.compiled.read(values, codec.max_record_bytes, codec.max_string_bytes, codec.max_items)
            if table is not None:
                return ArrowRows(table)
        rows = self.columns(values, codec)
        if rows is None:
            return DictRows([codec.decode(value, self.schema.name, topic) for value in values])
        return rows

    def columns(self, values: Sequence[bytes], codec: Codec) -> ColumnRows | None:
        """The records from the column decoder, or None when it does not take every one of them."""
        plan = self.plan
        if plan is None or not self._ours(codec):
            return None
        header, size = self.header, len(self.header)
        lists: list[list[Any]] = [[] for _ in range(plan.slots)]
        for slot in plan.offsets:
            lists[slot].append(0)
        decode = plan.bind(*lists)
        max_body, max_string, max_items = codec.max_record_bytes, codec.max_string_bytes, codec.max_items
        try:
            for value in values:
                if value[:size] != header or len(value) - size > max_body:
                    return None
                decode(value, size, max_string, max_items)
        except Exception:  # whatever the column decoder cannot read, the codec decides about
            return None
        return ColumnRows(plan, self.names, lists, len(values))

    def _ours(self, codec: Codec) -> TypeGuard[SingleObjectCodec]:
        """Whether ``codec`` frames values the default way and its newest version of the record is this one."""
        return (
            isinstance(codec, SingleObjectCodec)
            and codec.store.latest(self.schema.name).fingerprint == self.schema.fingerprint
        )
