"""The ledger of a reconciliation: every record accounted for, computed from plain facts.

Two sides, each a pure function over what was read (see :mod:`.reconcile`):

* **outputs** (:func:`output_ledger`): every offset of an output-topic
  partition, from its first record to its end, is in exactly one audit-log
  range (a data file, or a manifest recording skipped duplicates), and every
  id the topic holds there is in the log. Offsets the sink has not committed
  yet are *pending*; below its committed offset a missing range is an error.
* **inputs** (:func:`input_ledger`): every inference and feedback record has
  exactly one outcome: *joined* (a pair or unpaired signal names its offset,
  or an unmatched NO_PAIRS record or a dead letter of its judgement does),
  *unmatched* (with its reason), *dead-lettered*, a *duplicate* of a record
  with an outcome (same feedback_id, or the same inference bytes), *open*
  (its window is not over at the partition's stream time), or *pending*
  (the processor has not committed past it). Anything else is *unaccounted*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .manifest import Manifest

__all__ = ["InputRecord", "Ledger", "Outcomes", "input_ledger", "output_ledger", "spans"]

Offset = tuple[str, int, int]  # topic, partition, offset


def spans(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets as inclusive ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for o in sorted(set(offsets)):
        if out and o == out[-1][1] + 1:
            out[-1] = (out[-1][0], o)
        else:
            out.append((o, o))
    return out


def _text(ranges: list[tuple[int, int]], limit: int = 8) -> str:
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    return ", ".join(parts) + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "")


@dataclass
class Ledger:
    """One partition's account: counts by category, and what is wrong."""

    topic: str
    partition: int
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "counts": dict(self.counts),
            "problems": self.problems,
        }


# -- outputs ------------------------------------------------------------------------------------


def output_ledger(
    topic: str,
    partition: int,
    records: Mapping[int, str | None],
    manifests: Iterable[Manifest],
    committed: int | None,
    stored_ids: set[str] | None,
) -> Ledger:
    """Account for the records of one output-topic partition (one incarnation of it).

    ``records`` maps each offset the topic holds to the record's id (None for
    tables without one); ``manifests`` are this incarnation's; ``committed`` is
    the sink's committed offset; ``stored_ids`` every id in the table's files.
    """
    ledger = Ledger(topic, partition)
    ranges: dict[tuple[int, int], tuple[int, int]] = {}  # (first, last) -> (rows, skipped); split files add rows
    for m in manifests:
        rows, skipped = ranges.get((m.first_offset, m.last_offset), (0, 0))
        ranges[(m.first_offset, m.last_offset)] = (rows + m.rows, max(skipped, m.duplicates_skipped))
    covered: dict[int, tuple[int, int]] = {}
    for first, last in sorted(ranges):
        for o in range(first, last + 1):
            if o in covered:
                ledger.problems.append(f"offset {o} is in two ranges: {covered[o]} and {(first, last)}")
                break
            covered[o] = (first, last)
    for (first, last), (rows, skipped) in sorted(ranges.items()):
        held = sum(1 for o in range(first, last + 1) if o in records)
        if skipped >= 0 and held != rows + skipped:
            ledger.problems.append(
                f"offsets {first}-{last}: the topic holds {held} record(s), the log {rows} row(s) + {skipped} "
                "skipped duplicate(s)"
            )
    done = committed if committed is not None else 0
    missing = [o for o in records if o not in covered and o < done]
    pending = [o for o in records if o not in covered and o >= done]
    if missing:
        ledger.problems.append(f"offsets {_text(spans(missing))} were committed by the sink but are in no file")
    ledger.counts.update(records=len(records), in_files=sum(1 for o in records if o in covered), pending=len(pending))
    ledger.counts["missing"] = len(missing)
    if stored_ids is not None:
        lost = [o for o, rid in records.items() if o in covered and rid is not None and rid not in stored_ids]
        if lost:
            ledger.problems.append(f"ids of offsets {_text(spans(lost))} are in no file (covered by a range)")
        ledger.counts["ids_missing"] = len(lost)
    return ledger


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRecord:
    """What reconciliation needs of one inference or feedback record (``kind`` None: undecodable)."""

    topic: str
    partition: int
    offset: int
    kind: str | None
    request_id: str = ""
    feedback_id: str = ""
    event_ms: int = 0
    digest: str = ""


@dataclass
class Outcomes:
    """What the output topics say happened to input records, by source offset."""

    joined: set[Offset] = field(default_factory=set)
    unmatched: dict[Offset, str] = field(default_factory=dict)
    dead: dict[Offset, str] = field(default_factory=dict)

    def of(self, at: Offset) -> set[str]:
        found = set()
        if at in self.joined:
            found.add("joined")
        if at in self.unmatched:
            found.add(f"unmatched {self.unmatched[at]}")
        if at in self.dead:
            found.add("dead-lettered")
        return found


def input_ledger(
    records: list[InputRecord],
    outcomes: Outcomes,
    committed: Mapping[tuple[str, int], int | None],
    horizon_ms: int,
) -> list[Ledger]:
    """Account for every input record; ``records`` holds both input topics, in offset order per partition.

    ``committed`` is the processor's committed offset per (topic, partition);
    ``horizon_ms`` the join window plus grace: a record without an outcome is
    open while ``event_ms + horizon_ms`` is not before the stream time of its
    partition (the highest event time of the records the processor committed).
    """
    ledgers: dict[tuple[str, int], Ledger] = {}
    stream: dict[int, int] = {}
    processed = []
    for r in records:
        done = committed.get((r.topic, r.partition))
        if done is not None and r.offset < done:
            processed.append(r)
            at = (r.topic, r.partition, r.offset)
            if r.kind is not None and at not in outcomes.dead:
                stream[r.partition] = max(stream.get(r.partition, 0), r.event_ms)
    first_with: dict[tuple[str, str], InputRecord] = {}  # feedback_id / inference bytes -> first record
    for r in processed:
        key = ("feedback", r.feedback_id) if r.kind == "feedback" else ("inference", r.digest)
        if r.kind is not None and key not in first_with:
            first_with[key] = r
    for r in records:
        ledger = ledgers.setdefault((r.topic, r.partition), Ledger(r.topic, r.partition))
        at = (r.topic, r.partition, r.offset)
        found = outcomes.of(at)
        if len(found) > 1:
            ledger.counts["conflicting"] += 1
            ledger.problems.append(f"offset {r.offset} has {len(found)} outcomes: {', '.join(sorted(found))}")
            continue
        if found:
            (outcome,) = found
            ledger.counts[outcome] += 1
            continue
        done = committed.get((r.topic, r.partition))
        if done is None or r.offset >= done:
            ledger.counts["pending"] += 1
            continue
        if r.kind is None:
            ledger.counts["unaccounted"] += 1
            ledger.problems.append(f"offset {r.offset} does not decode and was not dead-lettered")
            continue
        key = ("feedback", r.feedback_id) if r.kind == "feedback" else ("inference", r.digest)
        first = first_with.get(key)
        if first is not None and first is not r:
            ledger.counts["duplicate"] += 1
            continue
        if r.event_ms + horizon_ms >= stream.get(r.partition, 0):
            ledger.counts["open"] += 1
            continue
        ledger.counts["unaccounted"] += 1
        ledger.problems.append(
            f"offset {r.offset} ({r.kind} {r.feedback_id or r.request_id}) has no outcome and its window closed"
        )
    for ledger in ledgers.values():
        ledger.problems = _merge_offsets(ledger.problems)
    return sorted(ledgers.values(), key=lambda led: (led.topic, led.partition))


def _merge_offsets(problems: list[str], limit: int = 20) -> list[str]:
    """Keep a ledger readable: at most ``limit`` problem lines, then a count of the rest."""
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"... and {len(problems) - limit} more"]
