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
#: dead letters that can stand beside pairs of the same judgement (one of its outputs could not be sent)
PARTIAL_DEAD_LETTERS = {"OutputTooLarge", "OutputNotEncodable"}


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
        rows, skipped = ranges.get((m.first_offset, m.last_offset), (0, m.duplicates_skipped))
        # a repaired manifest does not know its skipped count (-1): then neither does the range
        skipped = -1 if -1 in (skipped, m.duplicates_skipped) else max(skipped, m.duplicates_skipped)
        ranges[(m.first_offset, m.last_offset)] = (rows + m.rows, skipped)
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
    # the sink writes a partition in order: below its commit, or below what its files already cover, a record in
    # no file is missing (whatever the commit says: offsets of a group can expire or be reset)
    done = max(committed or 0, max((last + 1 for _, last in ranges), default=0))
    missing = [o for o in records if o not in covered and o < done]
    pending = [o for o in records if o not in covered and o >= done]
    if missing:
        ledger.problems.append(
            f"offsets {_text(spans(missing))} are in no file, below what the sink wrote or committed"
        )
    ledger.counts.update(records=len(records), in_files=sum(1 for o in records if o in covered), pending=len(pending))
    ledger.counts["missing"] = len(missing)
    if stored_ids is not None:
        lost = [o for o, rid in records.items() if o in covered and rid is not None and rid not in stored_ids]
        if lost:
            ledger.problems.append(f"ids of offsets {_text(spans(lost))} are in no file (covered by a range)")
        ledger.counts["ids_missing"] = len(lost)
    return ledger


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputRecord:
    """What reconciliation needs of one inference or feedback record (``kind`` None: undecodable).

    One is kept per input record the topics hold, so it has slots (no ``__dict__``): about 400 bytes with its
    strings.
    """

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
    """What the output topics say happened to input records, by source offset.

    Each outcome keeps the request_id it names (dead letters name none: ''), so an output of another record at
    the same offset (an older incarnation of the topic) is not taken for this record's; unmatched records and
    dead letters keep their ids, so two different ones for one record show as a conflict, and re-emissions do not.
    """

    #: (topic, partition) -> offset -> the request_ids outputs name; one per input record the topics hold, so
    #: nested by partition (no tuple key per record) and a tuple, mostly of one, instead of a set (216 bytes empty)
    joined: dict[tuple[str, int], dict[int, tuple[str, ...]]] = field(default_factory=dict)
    unmatched: dict[Offset, set[tuple[str, str, str]]] = field(default_factory=dict)  # (reason, id, request_id)
    dead: dict[Offset, set[tuple[str, str]]] = field(default_factory=dict)  # (error class, id)
    stream: dict[int, int] = field(default_factory=dict)  # partition -> highest stream time an output reports

    def add_joined(self, at: Offset, request_id: str) -> None:
        offsets = self.joined.setdefault(at[:2], {})
        names = offsets.get(at[2], ())
        if request_id not in names:
            offsets[at[2]] = (*names, request_id)

    def joined_at(self, at: Offset) -> tuple[str, ...]:
        """The request_ids that outputs joined at ``at`` name (empty: none was joined there)."""
        return self.joined.get(at[:2], {}).get(at[2], ())

    def add_unmatched(self, at: Offset, reason: str, record_id: str, request_id: str, stream_ms: int) -> None:
        self.unmatched.setdefault(at, set()).add((reason, record_id, request_id))
        self.stream[at[1]] = max(self.stream.get(at[1], 0), stream_ms)

    def add_dead(self, at: Offset, error_class: str, record_id: str) -> None:
        self.dead.setdefault(at, set()).add((error_class, record_id))

    def of(self, r: InputRecord) -> tuple[list[str], list[str]]:
        """(outcomes, problems) for one input record."""
        at = (r.topic, r.partition, r.offset)
        found: list[str] = []
        problems: list[str] = []
        joined = self.joined_at(at)
        names = set(joined) | {rid for _, _, rid in self.unmatched.get(at, ())}
        if r.kind is not None and names - {r.request_id, ""}:
            other = ", ".join(sorted(names - {r.request_id, ""}))
            problems.append(f"offset {r.offset}: outputs name request_id {other}, the record holds {r.request_id}")
        dead = sorted(self.dead.get(at, ()))
        if joined:
            found.append("joined")
            # some of a judgement's pairs can be dead-lettered (too large) while the others are stored
            dead = [(c, i) for c, i in dead if c not in PARTIAL_DEAD_LETTERS]
        found += [f"unmatched {reason}" for reason, _, _ in sorted(self.unmatched.get(at, ()))]
        found += ["dead-lettered"] * len(dead)
        return found, problems


def input_ledger(
    records: list[InputRecord],
    outcomes: Outcomes,
    committed: Mapping[tuple[str, int], int | None],
    horizon_ms: int,
) -> list[Ledger]:
    """Account for every input record; ``records`` holds both input topics, in offset order per partition.

    ``committed`` is the processor's committed offset per (topic, partition);
    ``horizon_ms`` the join window plus grace. A record without an outcome is
    *open* only while it could still be waiting: feedback whose inference has
    not been processed, or an inference whose window is not over at the
    partition's stream time (the highest of the processed event times and of
    the stream times the processor's unmatched outputs report, which include
    its idle fallback).
    """
    ledgers: dict[tuple[str, int], Ledger] = {}
    stream: dict[int, int] = dict(outcomes.stream)
    done = [r for r in records if r.offset < (committed.get((r.topic, r.partition)) or 0)]
    inferences: set[tuple[int, str]] = set()  # (partition, request_id) of processed inferences not dead-lettered
    first_with: dict[tuple[object, ...], InputRecord] = {}
    for r in done:
        dead = (r.topic, r.partition, r.offset) in outcomes.dead
        if r.kind is not None and not dead:
            stream[r.partition] = max(stream.get(r.partition, 0), r.event_ms)
            if r.kind == "inference":
                inferences.add((r.partition, r.request_id))
        key = _same(r)
        if key is not None and key not in first_with:
            first_with[key] = r
    for r in records:
        ledger = ledgers.setdefault((r.topic, r.partition), Ledger(r.topic, r.partition))
        found, problems = outcomes.of(r)
        ledger.problems += problems
        if len(found) > 1:
            ledger.counts["conflicting"] += 1
            ledger.problems.append(f"offset {r.offset} has {len(found)} outcomes: {', '.join(found)}")
            continue
        if found:
            ledger.counts[found[0]] += 1
            continue
        upto = committed.get((r.topic, r.partition))
        if upto is None or r.offset >= upto:
            ledger.counts["pending"] += 1
            continue
        if r.kind is None:
            ledger.counts["unaccounted"] += 1
            ledger.problems.append(f"offset {r.offset} does not decode and was not dead-lettered")
            continue
        first = first_with.get(_same(r))  # type: ignore[arg-type]
        if first is not None and first is not r:
            ledger.counts["duplicate"] += 1
            continue
        waiting = r.kind == "feedback" and (r.partition, r.request_id) not in inferences
        if (waiting or r.kind == "inference") and r.event_ms + horizon_ms >= stream.get(r.partition, 0):
            ledger.counts["open"] += 1
            continue
        ledger.counts["unaccounted"] += 1
        why = "its inference was processed" if r.kind == "feedback" and not waiting else "its window closed"
        ledger.problems.append(f"offset {r.offset} ({r.kind} {r.feedback_id or r.request_id}) has no outcome and {why}")
    for (topic, partition), ledger in ledgers.items():
        if committed.get((topic, partition)) is None:
            ledger.problems.append(
                f"the processor has committed nothing here, so {ledger.counts['pending']} record(s) are not "
                "accounted for: is it running, under this app id? (its group's offsets may have expired)"
            )
        ledger.problems = _merge_offsets(ledger.problems)
    return sorted(ledgers.values(), key=lambda led: (led.topic, led.partition))


def _same(r: InputRecord) -> tuple[object, ...] | None:
    """What makes two records the same for the processor's duplicate rules (None: undecodable)."""
    if r.kind == "feedback":
        return ("feedback", r.partition, r.request_id, r.feedback_id)
    if r.kind == "inference":
        return ("inference", r.partition, r.digest)
    return None


def _merge_offsets(problems: list[str], limit: int = 20) -> list[str]:
    """Keep a ledger readable: at most ``limit`` problem lines, then a count of the rest."""
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"... and {len(problems) - limit} more"]
