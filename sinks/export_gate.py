"""The privacy gate of an export: sealed fields opened, erased, unconsented and expired rows left out, counted.

An export is a training-set copy (:mod:`preflog.sinks.export`). :class:`PrivacyGate` sits between the
batches and the writer: it opens sealed personal fields with the keyring (a sealed value is never
written), and leaves out, counted by reason (:data:`PRIVACY_REASONS`), rows whose subject was erased,
rows whose consent does not allow ``training`` and rows past their retention. A log without privacy
facts passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from preflog.privacy.envelope import SHAPE, key_of
from preflog.privacy.fields import CONSENT, PURPOSES, RETENTION, consent_allows, expired

if TYPE_CHECKING:  # the keyring reads the keys topic: imported when a sealed batch is met
    from preflog.privacy.keyring import Keyring

__all__ = ["PRIVACY_REASONS", "PrivacyGate"]

PRIVACY_REASONS: dict[str, str] = {
    "erased": "erased rows left out",
    "no_consent": "rows left out without training consent",
    "expired": "rows left out past their retention",
}


def _texts(array: pa.Array) -> pa.Array | None:
    """The texts a personal column holds: itself (text), its values (a map), its messages' contents (a list)."""
    t = array.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return array
    if pa.types.is_map(t):
        return array.items
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type) and t.value_type.get_field_index("content") >= 0:
        return array.flatten().field("content")
    return None


class PrivacyGate:
    """What privacy lets an export write, batch by batch: sealed fields opened, and the rows it must not write left out.

    A row is left out (counted in :attr:`left_out` by the first of :data:`PRIVACY_REASONS` that applies) when
    its subject's data key was erased, when its consent does not allow ``purpose`` (the inference's
    ``preflog.consent``, else its data key's, else ``unstated``; and the feedback's, when it states one), or
    when its retention ran out by ``now`` (the inference's ``preflog.retention_days`` from its time, else its
    data key's expiry). ``keyring`` (a :class:`~preflog.privacy.keyring.Keyring` or a function giving one) is
    asked for only when a batch holds sealed values; it raises when there is none, so a sealed value is never
    written. Opened batches carry ``subject`` (for the export's lineage); :attr:`sealed` says whether any did.
    """

    def __init__(
        self,
        table: str,
        keyring: Keyring | Callable[[], Keyring] | None,
        unstated: Sequence[str] = PURPOSES,
        now: datetime | None = None,
        purpose: str = "training",
    ) -> None:
        self.table = table
        self._keyring = keyring
        self.unstated = tuple(unstated)
        self.now = now or datetime.now(timezone.utc)
        self.purpose = purpose
        self.left_out: dict[str, int] = dict.fromkeys(PRIVACY_REASONS, 0)
        self.sealed = False

    def keyring(self) -> Keyring:
        """The keyring, loaded on first use (its loader's error when there is none)."""
        from preflog.privacy.keyring import Keyring
        from preflog.privacy.keys import KeyError_

        if isinstance(self._keyring, Keyring):
            return self._keyring
        if self._keyring is None:
            raise KeyError_(
                f"the {self.table} table holds sealed personal fields and no keyring was given to open them"
            )
        self._keyring = self._keyring()
        return self._keyring

    def holds_sealed(self, batch: pa.RecordBatch) -> bool:
        """Whether any personal field of ``batch`` is sealed."""
        from preflog.privacy.keyring import PERSONAL

        for name in PERSONAL.get(self.table, ()):
            if name not in batch.schema.names:
                continue
            texts = _texts(batch.column(name))
            shaped = pc.fill_null(pc.match_substring_regex(texts, SHAPE), False) if texts is not None else None
            if shaped is not None and len(shaped) and pc.any(shaped).as_py():
                return True
        return False

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches`` opened and with the rows privacy leaves out removed (empty batches are dropped)."""
        for batch in batches:
            out = self.batch(batch)
            if out.num_rows:
                yield out

    def batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """One batch opened, the rows privacy leaves out removed and counted."""
        from preflog.privacy.keyring import open_table

        n = batch.num_rows
        keys: list[Any] = [None] * n
        erased: list[bool] = [False] * n
        if n and self.holds_sealed(batch):
            self.sealed = True
            ring = self.keyring()
            ids = (
                [key_of(v) if v else None for v in batch.column("prompt").to_pylist()]
                if "prompt" in batch.schema.names
                else []
            )
            opened = open_table(pa.Table.from_batches([batch]), self.table, ring)  # its message fields nullable
            if ids:  # after opening: the keyring reads the keys again before it calls one missing
                keys = [ring.snapshot.keys.get(k) if k else None for k in ids]
            erased = opened.column("erased").to_pylist()
            batch = opened.drop_columns(["erased"]).combine_chunks().to_batches()[0]
        if not self._facts(batch, erased, keys):
            return batch  # nothing here says anything of consent, retention or erasure: every row is written
        inference = self._metadata(batch, "inference_metadata")
        feedback = self._metadata(batch, "feedback_metadata")
        times = batch.column("inference_time").to_pylist() if "inference_time" in batch.schema.names else [None] * n
        reasons = [self._reason(erased[i], inference[i], feedback[i], times[i], keys[i]) for i in range(n)]
        for reason in reasons:
            if reason is not None:
                self.left_out[reason] += 1
        return batch.filter(pa.array([reason is None for reason in reasons], pa.bool_()))

    def _facts(self, batch: pa.RecordBatch, erased: list[bool], keys: list[Any]) -> bool:
        """Whether any row of ``batch`` can be left out: erased, stating consent or retention, or a strict default."""
        if any(erased) or self.purpose not in self.unstated:
            return True
        if any(k is not None and (k.consent is not None or k.expires_ms is not None) for k in keys):
            return True
        for column in ("inference_metadata", "feedback_metadata"):
            if column in batch.schema.names:
                names = batch.column(column).keys
                if len(names) and pc.any(pc.is_in(names, value_set=pa.array([CONSENT, RETENTION]))).as_py():
                    return True
        return False

    def _reason(
        self, erased: bool, inference: dict[str, str], feedback: dict[str, str], at: datetime | None, key: Any
    ) -> str | None:
        """Why a row is left out (a key of :data:`PRIVACY_REASONS`), None when it is written."""
        if erased:
            return "erased"
        consent = inference.get(CONSENT)
        if consent is None and key is not None:
            consent = key.consent
        stated = feedback.get(CONSENT)
        if not (
            consent_allows(consent, self.purpose, self.unstated) and consent_allows(stated, self.purpose, PURPOSES)
        ):
            return "no_consent"
        days = inference.get(RETENTION)
        if days is not None:
            return "expired" if expired(days, at, self.now) else None
        if key is not None and key.expires_ms is not None and key.expires_ms <= self.now.timestamp() * 1000:
            return "expired"
        return None

    @staticmethod
    def _metadata(batch: pa.RecordBatch, column: str) -> list[dict[str, str]]:
        if column not in batch.schema.names:
            return [{}] * batch.num_rows
        return [dict(m) if m else {} for m in batch.column(column).to_pylist()]
