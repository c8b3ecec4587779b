"""The readers' side: open sealed fields with the data keys of the keys topic; erased rows read as erased.

A :class:`Keyring` holds a snapshot of the keys topic and the master keys. A sealed value opens with its
data key; a value whose key an erasure deleted reads as null, and its row is marked erased (counted by
every reader, never dropped silently). A value sealed with a key the topic does not have and no erasure
names is an error that names the fix: the keys were lost, and saying "erased" would hide it. The
snapshot is read again (at most once a second) before a key is called missing, so a reader never
mistakes a key stored after it started for a lost one.

:func:`open_table` opens an Arrow table of the audit log (pairs, unpaired) and adds two columns:
``subject`` (the pseudonym of the person the row is about) and ``erased``. :meth:`Keyring.register`
gives a DuckDB connection the function ``preflog_open(text)`` and the table ``preflog_keys`` (key id,
subject, consent, expiry, erased).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import fields as f
from .columns import open_column
from .envelope import MARK, SHAPE, key_of, open_text
from .keys import KeyError_, Wrapper, load_masters, pick

if TYPE_CHECKING:  # the store needs Kafka's client: loaded only by a keyring that reads keys
    from .store import DirKeyStore, KeyStore, Snapshot

__all__ = ["PERSONAL", "SEALED_FIELDS", "Keyring", "is_struct_list", "open_table"]

#: the personal columns of each audit-log table: text columns, and list-of-message columns (their content)
PERSONAL: dict[str, tuple[str, ...]] = {
    "pairs": (
        "prompt", "prompt_messages", "chosen", "rejected", "chosen_messages", "rejected_messages", "rationale",
        "inference_metadata", "feedback_metadata",
    ),
    "unpaired": ("prompt", "prompt_messages", "completion", "completion_messages"),
    "turns": ("prompt", "prompt_messages", "candidates", "inference_metadata"),
}  # fmt: skip
#: the sealed string fields inside a list of structs (messages, tool calls, image references, candidates)
SEALED_FIELDS = frozenset(("content", "arguments", "uri", "text"))


class Keyring:
    """Data keys for reading; thread-safe."""

    def __init__(
        self, snapshot: Snapshot, masters: Sequence[Wrapper], store: KeyStore | DirKeyStore | None = None
    ) -> None:
        self.snapshot = snapshot
        self.masters = list(masters)
        self.store = store
        self._open: dict[str, AESGCM] = {}
        self._lock = threading.Lock()
        self._loaded = time.monotonic()
        self.erased_values = 0

    @classmethod
    def load(cls, settings: Any) -> Keyring:
        """The keyring of ``settings`` (privacy.keys_topic on settings.kafka, privacy's master keys)."""
        masters = load_masters(settings)
        from .store import open_store

        store = open_store(settings)
        return cls(store.load(), masters, store)

    def reload(self) -> None:
        if self.store is None:
            return
        snap = self.store.load()
        with self._lock:
            self.snapshot = snap
            self._loaded = time.monotonic()

    def aead(self, key_id: str) -> AESGCM | None:
        """The data key ``key_id``, or None when an erasure deleted it.

        Raises:
            KeyError_: the key is unknown to the keys topic and no erasure names it, or its master key is not loaded.
        """
        found = self._open.get(key_id)
        if found is not None:
            return found
        record = self.snapshot.keys.get(key_id)
        stale = time.monotonic() - self._loaded > 1.0
        if record is None and key_id not in self.snapshot.erased and self.store is not None and stale:
            self.reload()
            record = self.snapshot.keys.get(key_id)
        if record is None:
            if key_id in self.snapshot.erased:
                return None
            where = self.store.topic if self.store is not None else "the keys topic"
            raise KeyError_(
                f"a value is sealed with data key {key_id}, which {where} does not have and no erasure names: the "
                "keys topic was lost, recreated or is not the one the producers wrote (privacy.keys_topic); restore "
                "it from its backup. Nothing was read as erased"
            )
        aead = AESGCM(record.unwrap(pick(self.masters, record.master)))
        with self._lock:
            self._open[key_id] = aead
        return aead

    def open(self, value: str | None) -> str | None:
        """``value`` opened; a text that is not sealed as it is; None when its key was erased."""
        if value is None or not value.startswith(MARK):
            return value
        key_id = key_of(value)
        if key_id is None:
            return value
        aead = self.aead(key_id)
        if aead is None:
            self.erased_values += 1
            return None
        return open_text(aead, key_id, value)

    def state(self, key_id: str | None) -> str:
        """``sealed`` (its key is live), ``erased``, or ``plain`` (no key id)."""
        if key_id is None:
            return "plain"
        return "erased" if self.aead(key_id) is None else "sealed"

    def register(self, con: Any) -> None:
        """Give DuckDB ``preflog_open(VARCHAR) -> VARCHAR`` and the table ``preflog_keys``."""
        import duckdb

        def open_arrow(values: pa.Array | pa.ChunkedArray) -> pa.Array:
            # DuckDB hands a vector (2,048 values) as a chunked VARCHAR array: opened as read_pairs opens a column
            array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
                return pa.array([self.open(v) for v in array.to_pylist()], pa.string())
            return _strings(array, self.open).cast(pa.string())

        con.create_function(
            "preflog_open", open_arrow, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
            type="arrow", null_handling="special", side_effects=False,
        )  # fmt: skip
        snap = self.snapshot
        live = list(snap.keys.values())
        keys = pa.table({
            "key_id": [k.key_id for k in live] + list(snap.erased),
            "subject": [k.subject for k in live] + [None] * len(snap.erased),
            "consent": [k.consent for k in live] + [None] * len(snap.erased),
            "expires_ms": pa.array([k.expires_ms for k in live] + [None] * len(snap.erased), pa.int64()),
            "erased": [False] * len(live) + [True] * len(snap.erased),
        })  # fmt: skip
        con.register("preflog_keys__arrow", keys)
        con.execute("CREATE OR REPLACE TEMP TABLE preflog_keys AS SELECT * FROM preflog_keys__arrow")
        con.unregister("preflog_keys__arrow")


def _strings(array: pa.Array, fn: Callable[[str | None], str | None]) -> pa.Array:
    """``fn`` of each value of a string, list-of-message or map array (message contents, map values)."""
    t = array.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        ring = getattr(fn, "__self__", None)
        if isinstance(ring, Keyring) and getattr(fn, "__func__", None) is Keyring.open and len(array):
            # a keyring's open, a column at a time (:mod:`.columns`); what it cannot do as open does is done value
            # by value below, which then gives open's own result or error (a lost key, a value that does not open)
            try:
                opened, erased = open_column(array, ring)
            except Exception:
                pass
            else:
                ring.erased_values += erased
                return opened
        return pa.array([fn(v) for v in array.to_pylist()], t)
    if pa.types.is_map(t):
        items = _strings(array.items, fn)
        return pa.MapArray.from_arrays(array.offsets, array.keys, items, mask=_nulls(array))
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):
        structs = array.values
        names = [structs.type.field(i).name for i in range(structs.type.num_fields)]
        children = [structs.field(i) for i in range(len(names))]
        children = [
            _strings(c, fn) if n in SEALED_FIELDS or is_struct_list(c.type) else c
            for n, c in zip(names, children, strict=True)
        ]
        fields = [pa.field(n, c.type, nullable=True) for n, c in zip(names, children, strict=True)]
        new = pa.StructArray.from_arrays(children, fields=fields, mask=_nulls(structs))
        return pa.ListArray.from_arrays(array.offsets, new, mask=_nulls(array))
    return array


def is_struct_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) and pa.types.is_struct(t.value_type))


def _nulls(array: pa.Array) -> pa.Array | None:
    return array.is_null() if array.null_count else None


def open_table(table: pa.Table, name: str, keyring: Keyring) -> pa.Table:
    """``table`` (of the audit-log table ``name``) with its personal fields opened, plus ``subject`` and ``erased``.

    A row is erased when its prompt's data key was erased; its sealed fields are null then.
    """
    columns = [c for c in PERSONAL.get(name, ()) if c in table.column_names]
    if not columns or table.num_rows == 0:
        return table
    key_ids = _key_ids(table)
    unique = [k for k in pc.unique(key_ids).to_pylist() if k is not None]
    erased_keys = pa.array([k for k in unique if keyring.state(k) == "erased"], pa.string())
    erased = pc.fill_null(pc.is_in(key_ids, value_set=erased_keys), False)
    subjects = _subjects(table, key_ids, unique, keyring)
    out = table
    for c in columns:
        i = out.schema.get_field_index(c)
        array = out.column(c).combine_chunks()
        opened = _strings(array, keyring.open)  # its fields nullable: an erased value reads as null
        out = out.set_column(i, pa.field(c, opened.type, nullable=True), opened)
    out = out.append_column(pa.field("subject", pa.string()), subjects)
    return out.append_column(pa.field("erased", pa.bool_()), erased)


def _key_ids(table: pa.Table) -> pa.Array:
    """The data key id of each row's prompt (null where it is not sealed), as :func:`.envelope.key_of` reads it."""
    if "prompt" not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    prompts = table.column("prompt").combine_chunks()
    shaped = pc.fill_null(pc.match_substring_regex(prompts, SHAPE), False)
    return pc.if_else(shaped, pc.utf8_slice_codeunits(prompts, 4, 20), pa.scalar(None, pa.string()))


def _subjects(table: pa.Table, key_ids: pa.Array, unique: list[str], keyring: Keyring) -> pa.Array:
    """The subject of each row: its metadata's, else its prompt's data key's."""
    keys = keyring.snapshot.keys
    of_key = pc.take(
        pa.array([keys[k].subject if k in keys else None for k in unique], pa.string()),
        pc.index_in(key_ids, value_set=pa.array(unique, pa.string())),
    )
    if "inference_metadata" not in table.column_names:
        return of_key
    metadata = table.column("inference_metadata").combine_chunks()
    if pa.types.is_map(metadata.type):
        stated = pc.map_lookup(metadata, f.SUBJECT, "first")
    else:  # a map read as a list of key/value pairs
        stated = pa.array([None if m is None else dict(m).get(f.SUBJECT) for m in metadata.to_pylist()], pa.string())
    return pc.coalesce(stated, of_key)


def any_sealed(table: pa.Table) -> bool:
    """Whether ``table`` holds sealed fields: a pair names its data key, a signal's prompt is sealed whole."""
    if table.num_rows == 0:
        return False
    if "inference_metadata" in table.column_names:
        metadata = table.column("inference_metadata").combine_chunks()
        if pa.types.is_map(metadata.type):
            return bool(pc.any(pc.is_valid(pc.map_lookup(metadata, f.KEY, "first"))).as_py())
    if "prompt" not in table.column_names:
        return False
    return bool(pc.any(pc.fill_null(pc.match_substring_regex(table.column("prompt"), SHAPE), False)).as_py())


def reader_keyring(settings: Any = None) -> Keyring:
    """The keyring of ``settings`` (the environment's by default), for a reader that met sealed fields."""
    from preflog.settings import load_settings

    settings = settings or load_settings()
    try:
        return Keyring.load(settings)
    except KeyError_ as exc:
        raise KeyError_(
            f"the audit log holds sealed personal fields: {exc} (or read them sealed: keys='sealed')"
        ) from None
