"""Stream time and expiry: the half of the join that runs on time, not on a record.

Stream time is the highest event time seen on a partition; an entry expires
when stream time passes its ``expires_ms``. An expiring inference without
feedback is emitted as unmatched NO_FEEDBACK and leaves a marker for
``late_retention``; waiting feedback whose inference never came is emitted
as unmatched NO_INFERENCE. :class:`Expiry` is the base of
:class:`preflog.processors.join.Joiner`; it also makes the outcomes both use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from preflog.schemas.codec import Codec

from .due import DueIndex
from .entry import Entry, Stored
from .exceptions import StateError
from .outputs import Emit, OutputEncoder, Source
from .records import unmatched_record
from .table_state import TableEntries

if TYPE_CHECKING:
    from .join import JoinConfig

__all__ = ["Expiry"]

log = logging.getLogger(__name__)
Record = dict[str, Any]


class Expiry:
    """Stream time per partition, the expiry index, and the outcomes of expiry.

    Args:
        config: the join's window settings.
        codec: decodes the stored records.
        state: request_id -> entry (a Faust Table view in the worker, a dict elsewhere).
        stream_times: partition -> saved stream time (ms).
        encoder: encodes every output.
        wall_ms: the clock of the idle fallback.
    """

    def __init__(
        self,
        config: JoinConfig,
        codec: Codec,
        state: MutableMapping[str, Entry],
        stream_times: MutableMapping[int, int],
        encoder: OutputEncoder,
        wall_ms: Callable[[], int],
    ) -> None:
        self.config = config
        self.codec = codec
        self.state = state
        self.stream_times = stream_times
        self.encoder = encoder
        self.wall_ms = wall_ms
        self.stream_time: dict[int, int] = {}
        self._due: dict[int, DueIndex] = {}
        self._last_event: dict[int, tuple[int, int]] = {}  # partition -> (wall ms, stream time) at last event
        self._persisted: dict[int, int] = {}  # partition -> stream time last written to state

    def tick(self, partition: int) -> list[Emit]:
        """Idle fallback: move stream time on with the wall clock when the partition is quiet.

        Args:
            partition: the partition whose tick arrived.

        Returns:
            The outcomes of the entries that expired.
        """
        now = self.wall_ms()
        if partition not in self.stream_time:
            saved = self.stream_times.get(partition)
            if saved is not None:
                self.stream_time[partition] = saved
        last_wall, last_stream = self._last_event.setdefault(partition, (now, self.stream_time.get(partition, 0)))
        out: list[Emit] = []
        if now - last_wall >= self.config.idle_timeout_ms and last_stream:
            out = self._expire(partition, last_stream + (now - last_wall))
        st = self.stream_time.get(partition)
        if st is not None and st != self._persisted.get(partition):  # a changelog write only when it moved
            self.stream_times[partition] = st
            self._persisted[partition] = st
        return out

    def forget_index(self) -> None:
        """Drop the in-memory expiry index (after a rebalance); it is rebuilt from state on demand."""
        self._due.clear()
        self.stream_time.clear()
        self._last_event.clear()
        self._persisted.clear()

    def index_size(self) -> int:
        """Entries in the expiry index (waiting or remembered) on this worker."""
        return sum(len(due) for due in self._due.values())

    def _unpoison(self, partition: int, event_ms: int) -> None:
        """Drop a stream time further ahead of the clock than any event may be (saved before the skew check)."""
        if partition not in self.stream_time:
            saved = self.stream_times.get(partition)
            if saved is None:
                return
            self.stream_time[partition] = saved
        limit = self.wall_ms() + self.config.max_event_time_skew_ms
        if self.stream_time[partition] > limit:
            log.warning(
                "partition %d: stream time %d ms is ahead of the clock by more than max_event_time_skew_s (an event "
                "time accepted before that check); it restarts from this event's time %d ms",
                partition,
                self.stream_time[partition],
                event_ms,
            )
            self.stream_time[partition] = event_ms

    def _advance(self, partition: int, event_ms: int) -> list[Emit]:
        if partition not in self.stream_time:
            saved = self.stream_times.get(partition)
            self.stream_time[partition] = event_ms if saved is None else saved
        out = self._expire(partition, max(self.stream_time[partition], event_ms))
        self._last_event[partition] = (self.wall_ms(), self.stream_time[partition])
        return out

    def _index(self, partition: int) -> DueIndex:
        due = self._due.get(partition)
        if due is None:
            self._build_index()
            due = self._due.setdefault(partition, DueIndex())
        return due

    def _build_index(self) -> None:
        """One scan of the state indexes every partition not indexed yet (after a start or a rebalance).

        The worker's state is read for each entry's head only
        (:meth:`TableEntries.due`); at 300k entries, decoding every entry once
        per partition was 56% of a restarted worker's recovery (py-spy).
        """
        if isinstance(self.state, TableEntries):
            scan = self.state.due()
        else:
            scan = ((rid, entry.partition, entry.expires_ms) for rid, entry in self.state.items())
        found: dict[int, list[tuple[int, str]]] = {}
        for rid, partition, expires_ms in scan:
            if partition not in self._due:
                found.setdefault(partition, []).append((expires_ms, rid))
        for partition, items in found.items():
            self._due[partition] = DueIndex(items)

    def _put(self, partition: int, rid: str, entry: Entry) -> None:
        """Store ``rid``'s entry, in the worker filed under ``partition`` (:meth:`TableEntries.put`).

        ``partition`` is the input partition of the record or tick that caused the write.
        """
        if isinstance(self.state, TableEntries):
            self.state.put(partition, rid, entry)
        else:
            self.state[rid] = entry

    def _drop(self, partition: int, rid: str) -> None:
        """Delete ``rid``'s entry, filed under ``partition`` as :meth:`_put` files a write."""
        if isinstance(self.state, TableEntries):
            self.state.drop(partition, rid)
        else:
            self.state.pop(rid, None)

    def _schedule(self, partition: int, rid: str, entry: Entry) -> None:
        self._put(partition, rid, entry)
        self._index(partition).push(entry.expires_ms, rid)

    def _expire(self, partition: int, stream_ms: int) -> list[Emit]:
        self.stream_time[partition] = max(self.stream_time.get(partition, 0), stream_ms)
        st = self.stream_time[partition]
        due = self._index(partition)
        out: list[Emit] = []
        while (first := due.first()) is not None and first < st:
            exp, rid = due.pop()
            entry = self.state.get(rid)
            if entry is not None and entry.expires_ms == exp:
                try:
                    out += self._expire_entry(partition, rid, entry, st)
                except StateError:
                    raise
                except Exception as exc:
                    out += self._expiry_failed(partition, rid, entry, exc)
        return out

    def _expiry_failed(self, partition: int, rid: str, entry: Entry, exc: Exception) -> list[Emit]:
        """The stored records of an entry whose expiry failed, dead-lettered; the entry is dropped."""
        log.exception("expiring request_id %s failed; its stored records are dead-lettered", rid)
        reason = f"the join failed expiring this stored record: {type(exc).__name__}: {exc}"
        stored = [entry.inference] if entry.inference else entry.feedback
        self._drop(partition, rid)
        key = rid.encode()
        return [self._dead(reason, "JoinError", "join", key, s.value, s.at) for s in stored]

    def _expire_entry(self, partition: int, rid: str, entry: Entry, st: int) -> list[Emit]:
        out: list[Emit] = []
        if entry.done:
            self._drop(partition, rid)
            return out
        c = self.config
        if entry.inference:
            inf = entry.inference
            if entry.judged == 0:
                record = self._decoded_inference(rid, inf)
                detail = f"no valid feedback within {c.window_ms} ms (+{c.grace_ms} ms grace) of the inference"
                out.append(self._unmatched("NO_FEEDBACK", detail, "InferenceEvent", record, st, inf.value, inf.at))
            expires_ms = entry.expires_ms + c.late_retention_ms
            marker = Entry(partition, expires_ms, seen=entry.seen, digest=entry.digest, done=True)
            self._forget_decoded(rid)
            self._schedule(partition, rid, marker)
            return out
        for fb in entry.feedback:
            record = self._waiting_feedback(fb)
            detail = f"no inference with this request_id arrived within {c.window_ms + c.grace_ms} ms of the feedback"
            out.append(self._unmatched("NO_INFERENCE", detail, "FeedbackEvent", record, st, fb.value, fb.at))
        self._drop(partition, rid)
        return out

    def _decoded_inference(self, rid: str, stored: Stored) -> Record:
        """The inference ``stored`` holds, decoded (the Joiner remembers decoded inferences)."""
        return stored.decode(self.codec, "InferenceEvent")

    def _forget_decoded(self, rid: str) -> None:
        """``rid``'s inference expired: a decoded copy need not be kept (the Joiner keeps them)."""

    def _waiting_feedback(self, stored: Stored) -> Record:
        """A waiting feedback, decoded (the Joiner remembers decoded feedback)."""
        return stored.decode(self.codec, "FeedbackEvent")

    # -- outcomes --------------------------------------------------------------------------------

    def _dead(
        self, reason: str, error_class: str, stage: str, key: bytes | None, value: bytes | None, at: Record
    ) -> Emit:
        return self.encoder.dead(reason, error_class, stage, Source(key, value, at))

    def _unmatched(
        self,
        reason: str,
        detail: str,
        kind: str,
        record: Record,
        st: int,
        value: bytes,
        at: Record,
        inference_at: Record | None = None,
    ) -> Emit:
        rid = str(record["request_id"]).encode()
        unmatched = unmatched_record(reason, detail, kind, record, st, value, at, inference_at)
        return self.encoder.emit("unmatched", rid, unmatched, Source(rid, value, at, inference_at))
