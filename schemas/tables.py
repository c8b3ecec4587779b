"""The catalogue of preflog's topics and output tables: one place that says what each one is.

Every other module asks here: the processor for the record type of an
output, the sink for the id that deduplicates a table and the time that
names its ``dt=`` folder, the CLI for the roles it accepts. Adding an output
table is one entry in :data:`OUTPUTS` (plus its ``.avsc`` and, for a
configurable topic name, a field of ``TopicSettings`` of the same name,
which a test checks).

This module imports nothing heavy: ``preflog.read_pairs`` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["INPUTS", "OUTPUTS", "RECORD_TYPES", "TABLES", "TOPIC_RECORDS", "Input", "Output"]


@dataclass(frozen=True)
class Input:
    """A topic producers write and the processor reads."""

    role: str  #: the name of its topic setting (``settings.topics.<role>``)
    record: str  #: its Avro record type (``schemas/avro/<record>/``)


@dataclass(frozen=True)
class Output:
    """A topic the processor writes and the sink stores as the table of the same name."""

    role: str  #: the table name, and the name of its topic setting
    record: str  #: its Avro record type
    id_column: str  #: the deterministic id the sink stores once (``read_table`` dedupes on it)
    time_column: str  #: the timestamp whose UTC date names the ``dt=`` folder of a row
    what: str  #: one line for ``--help`` and the README


INPUTS: tuple[Input, ...] = (
    Input("inference", "InferenceEvent"),
    Input("feedback", "FeedbackEvent"),
)

OUTPUTS: tuple[Output, ...] = (
    Output("pairs", "PreferencePair", "pair_id", "feedback_time", "one chosen/rejected pair per judgement"),
    Output("unpaired", "UnpairedSignal", "signal_id", "feedback_time", "thumbs up/down on one candidate (KTO)"),
    Output("unmatched", "UnmatchedRecord", "unmatched_id", "event_time", "inputs without a partner, with the reason"),
    Output("dead_letter", "DeadLetter", "dead_letter_id", "failed_at", "records that could not be processed"),
    Output("turns", "ConversationTurn", "request_id", "event_time", "each conversation turn as sent, for later turns"),
)

#: output tables by role
TABLES: dict[str, Output] = {o.role: o for o in OUTPUTS}
#: the record type on each of preflog's topics, by topic role (inputs first, then outputs)
TOPIC_RECORDS: dict[str, str] = {i.role: i.record for i in INPUTS} | {o.role: o.record for o in OUTPUTS}
#: every record type with a schema folder
RECORD_TYPES: tuple[str, ...] = tuple(TOPIC_RECORDS.values())
