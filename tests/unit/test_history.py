"""Resolving conversation histories from the turns table (preflog.sinks.history), through read_pairs.

Each expected history is the transcript a chat client would hold, built here turn by turn from what was
sent (its messages, then the continued candidate's messages or text), never by the code under test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from preflog.processors.records import turn_record
from preflog.schemas.events import inference_record
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.history import Histories, Turn
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.read import read_pairs
from preflog.sinks.storage import Storage

from ..conftest import inference
from ..samples import OFFSET
from .dataset_helpers import rows, write_table

KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "images")
TOOL_ANSWER = [
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "calc", "arguments": {"x": 6}}]},
    {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "calc"},
    {"role": "assistant", "content": "It is 42."},
]


def _plain(messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Messages with every field present (the log's struct has them all), tool-call arguments as JSON text."""
    if messages is None:
        return None
    out = []
    for m in messages:
        m = {k: m.get(k) for k in KEYS}
        if m["tool_calls"] is not None:
            m["tool_calls"] = [{"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in m["tool_calls"]]
        out.append(m)
    return out


@dataclass
class Chat:
    """A client's side of one conversation: the transcript it holds, and what it sent each turn."""

    id: str = field(default_factory=lambda: f"conv-{uuid.uuid4().hex[:8]}")
    transcript: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # the inference of each turn, as validated
    expected: list[list[dict[str, Any]]] = field(default_factory=list)  # each turn's whole prompt history
    last: int = 0  # the candidate the conversation continued with, after the last turn

    def turn(self, said: str, by_reference: bool = True, candidate: int = 1, tools: bool = False) -> dict[str, Any]:
        """Send the next turn (``said`` from the user), continue with ``candidate``; the inference sent."""
        k = len(self.sent)
        delta = [{"role": "user", "content": f"{said} (turn {k})"}]
        self.transcript = self.transcript + delta
        refer = by_reference and k > 0
        conversation = {"id": self.id, "turn": k}
        if refer:
            conversation |= {"previous_request_id": self.sent[-1]["request_id"], "previous_candidate": self.last}
        answers: list[Any] = [f"answer {k}.0", f"answer {k}.1"]
        if tools:
            answers[candidate] = {"text": "It is 42.", "messages": TOOL_ANSWER}
        event = inference_record(
            inference(
                request_id=str(uuid.uuid4()),
                prompt=None,  # derived from the messages sent, as the SDK does
                prompt_messages=delta if refer else list(self.transcript),
                candidates=answers,
                conversation=conversation,
            )
        )
        self.expected.append(list(self.transcript))
        chosen = event["candidates"][candidate]
        self.transcript = self.transcript + (
            chosen["messages"] if chosen.get("messages") else [{"role": "assistant", "content": chosen["text"]}]
        )
        self.sent.append(event)
        self.last = candidate
        return event


def _turns(root: Path, events: list[dict[str, Any]], first: int = 0, name: str | None = None) -> None:
    """A file of the turns table holding these inferences' turns (named as the sink names it, unless ``name``)."""
    schema = arrow_schema(default_store().latest("ConversationTurn").raw)
    body = encode(to_table([turn_record(e, OFFSET) for e in events], schema))
    name = name or file_name("preflog.turns.v1", 0, first, first + len(events) - 1)
    Storage(f"file://{root}").put(f"turns/dt=2026-11-01/{name}", body)


def _pairs(root: Path, events: list[dict[str, Any]], first: int = 0) -> str:
    """One pair per inference (candidate 1 over 0), as the join copies them; the log's URL."""
    records = rows([(f"q{i}", "a", "b", "END_USER") for i in range(len(events))], first=first)
    for r, e in zip(records, events, strict=True):
        r.update(request_id=e["request_id"], conversation=e["conversation"], prompt_messages=e["prompt_messages"])
        r.update(prompt=e["prompt"], inference_metadata=e["metadata"])  # a sealed pair names its data key there
    return write_table(root, "pairs", records, first=first)


def _read(url: str, **kw: Any) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in read_pairs(url, **kw).to_pylist()}


def test_a_chain_by_reference_mixed_with_turns_in_full_reads_as_the_client_held_it(tmp_path: Path) -> None:
    chat = Chat()
    for k in range(7):
        chat.turn("say", by_reference=k != 3, candidate=k % 2, tools=k in (1, 4))  # turn 3 sends it all again
    _turns(tmp_path, chat.sent)
    got = _read(_pairs(tmp_path, chat.sent))
    for k, event in enumerate(chat.sent):
        row = got[event["request_id"]]
        assert row["history_problem"] is None, k
        assert row["prompt_messages"] == _plain(chat.expected[k]), k
    assert len(got[chat.sent[6]["request_id"]]["prompt_messages"]) == 7 + 6 + 2 * 2  # 6 answers, 2 of 3 messages
    without = _read(f"file://{tmp_path}", histories=False)  # as logged: the turn's own messages
    assert without[chat.sent[5]["request_id"]]["prompt_messages"] == _plain(chat.sent[5]["prompt_messages"])
    assert "history_problem" not in read_pairs(f"file://{tmp_path}", histories=False).column_names


def test_a_turn_that_never_arrived_is_flagged_and_keeps_its_own_messages(tmp_path: Path) -> None:
    chat = Chat()
    for _ in range(4):
        chat.turn("say")
    _turns(tmp_path, [chat.sent[0], chat.sent[1], chat.sent[3]])  # turn 2 never reached the turns table
    got = _read(_pairs(tmp_path, chat.sent))
    lost = chat.sent[2]["request_id"]
    assert got[chat.sent[1]["request_id"]]["prompt_messages"] == _plain(chat.expected[1])
    for k in (3,):  # refers to the lost turn: flagged, and what it sent is kept, not cut
        row = got[chat.sent[k]["request_id"]]
        assert row["history_problem"] == f"missing_turn: turn {lost} never reached the turns table"
        assert row["prompt_messages"] == _plain(chat.sent[k]["prompt_messages"])
    assert got[chat.sent[0]["request_id"]]["history_problem"] is None


def test_no_turns_table_flags_every_reference_and_a_plain_log_reads_as_before(tmp_path: Path) -> None:
    chat = Chat()
    chat.turn("hi")
    chat.turn("more")
    got = _read(_pairs(tmp_path / "a", chat.sent))
    assert got[chat.sent[1]["request_id"]]["history_problem"].startswith("missing_turn: ")
    plain = write_table(tmp_path / "b", "pairs", rows([("q", "a", "b", "END_USER")]))
    assert read_pairs(plain).column_names == read_pairs(plain, histories=False).column_names
    assert "history_problem" not in read_pairs(plain).column_names


def test_a_candidate_the_previous_turn_does_not_have_is_flagged(tmp_path: Path) -> None:
    chat = Chat()
    chat.turn("hi")
    bad = chat.turn("more")
    bad["conversation"] = {**bad["conversation"], "previous_candidate": 5}
    _turns(tmp_path, chat.sent)
    row = _read(_pairs(tmp_path, chat.sent))[bad["request_id"]]
    assert row["history_problem"] == f"missing_candidate: turn {chat.sent[0]['request_id']} has no candidate 5"


def test_a_reference_into_another_conversation_is_flagged(tmp_path: Path) -> None:
    one, two = Chat(), Chat()
    one.turn("hi")
    two.turn("hello")
    stray = two.turn("more")
    stray["conversation"] = {**stray["conversation"], "previous_request_id": one.sent[0]["request_id"]}
    _turns(tmp_path, one.sent + two.sent)
    row = _read(_pairs(tmp_path, one.sent + two.sent))[stray["request_id"]]
    assert row["history_problem"] == (
        f"conversation_mismatch: turn {one.sent[0]['request_id']} is of conversation {one.id}, not {two.id}"
    )


def test_turns_that_refer_to_one_another_are_a_cycle_not_a_hang(tmp_path: Path) -> None:
    chat = Chat()
    for _ in range(3):
        chat.turn("say")
    first = chat.sent[0]
    first["conversation"] = {**first["conversation"], "previous_request_id": chat.sent[1]["request_id"]}
    first["conversation"]["previous_candidate"] = 0
    _turns(tmp_path, chat.sent)
    got = _read(_pairs(tmp_path, chat.sent))
    for event in chat.sent:
        assert got[event["request_id"]]["history_problem"].startswith("cycle: turn "), event["conversation"]["turn"]


def test_a_turn_stored_twice_or_copied_by_hand_resolves_from_its_first_copy(tmp_path: Path) -> None:
    chat = Chat()
    for _ in range(3):
        chat.turn("say")
    _turns(tmp_path, chat.sent)
    altered = [{**chat.sent[1], "candidates": [{**c, "text": "rewritten"} for c in chat.sent[1]["candidates"]]}]
    _turns(tmp_path, altered, first=100)  # a later copy of turn 1 (a replay): the first copy wins
    _turns(tmp_path, altered, name="turns-copy.parquet")  # a stray file: not one the sink wrote
    got = _read(_pairs(tmp_path, chat.sent))
    assert got[chat.sent[2]["request_id"]]["prompt_messages"] == _plain(chat.expected[2])
    assert "rewritten" not in str(got)


def test_histories_are_memoised_and_long_chains_do_not_recurse() -> None:
    n = 5000  # deeper than Python's recursion limit
    ids = [str(uuid.uuid4()) for _ in range(n)]
    turns = {
        ids[k]: Turn(
            ids[k], "c", ids[k - 1] if k else None, 0 if k else None, [{"role": "user", "content": str(k)}],
            {0: [{"role": "assistant", "content": f"a{k}"}]},
        )
        for k in range(n)
    }  # fmt: skip
    h = Histories(turns)
    last = h.full(ids[-1])
    assert isinstance(last, list) and len(last) == 2 * n - 1
    assert [m["content"] for m in last[:4]] == ["0", "a0", "1", "a1"]
    assert len(h._full) == n  # every turn of the chain resolved once, on the way


SECRET = b"history-test-secret-0123456789ab"


def test_a_sealed_log_resolves_opened_with_the_readers_keys(tmp_path: Path) -> None:
    from preflog.privacy.keyring import Keyring
    from preflog.privacy.keys import generate_master
    from preflog.privacy.sealer import Privacy, Sealer
    from preflog.privacy.store import DirKeyStore

    master = generate_master(tmp_path / "master.key")
    store = DirKeyStore(tmp_path / "keys")
    sealer = Sealer(SECRET, master, store)
    chat = Chat()
    for k in range(4):
        chat.turn("secret", tools=k == 1)
    sealed = [sealer.inference(e, Privacy()) for e in chat.sent]
    assert "secret" not in str(sealed)
    _turns(tmp_path, sealed)
    url = _pairs(tmp_path, sealed)
    got = _read(url, keys=Keyring(store.load(), [master], store))
    for k, event in enumerate(sealed):
        assert got[event["request_id"]]["history_problem"] is None
        assert got[event["request_id"]]["prompt_messages"] == _plain(chat.expected[k]), k
    still = _read(url, keys="sealed")[sealed[3]["request_id"]]["prompt_messages"]
    assert len(still) == len(chat.expected[3]) and "secret" not in str(still)  # resolved, still sealed


@pytest.mark.parametrize("table", ["unpaired"])
def test_signals_resolve_as_pairs_do(tmp_path: Path, table: str) -> None:
    from .dataset_helpers import SIGNAL

    chat = Chat()
    for _ in range(3):
        chat.turn("say")
    _turns(tmp_path, chat.sent)
    records = []
    for i, e in enumerate(chat.sent):
        records.append({**SIGNAL, "signal_id": f"00000000-0000-4000-8000-{i:012d}", "request_id": e["request_id"],
                        "conversation": e["conversation"], "prompt_messages": e["prompt_messages"]})  # fmt: skip
    url = write_table(tmp_path, table, records)
    got = {r["request_id"]: r for r in read_pairs(url, table=table).to_pylist()}
    assert got[chat.sent[2]["request_id"]]["prompt_messages"] == _plain(chat.expected[2])


def test_a_build_takes_whole_histories_and_leaves_out_and_counts_what_does_not_resolve(tmp_path: Path) -> None:
    import json

    from preflog.dataset.build import build
    from preflog.dataset.select import Selection

    chat, lost = Chat(), Chat()
    for _ in range(4):
        chat.turn("say", tools=True)
        lost.turn("ask")
    _turns(tmp_path / "log", [*chat.sent, lost.sent[0], lost.sent[2], lost.sent[3]])  # lost's turn 1 never arrived
    url = _pairs(tmp_path / "log", chat.sent + lost.sent)
    m = build(url, tmp_path / "ds", "v1", Selection(test_fraction=0.0))
    assert m["left_out"]["history"] == {"missing_turn": 2}  # lost's turns 2 and 3
    lines = [json.loads(x) for x in (tmp_path / "ds" / "v1" / "trl-conversational" / "train.jsonl").open()]
    prompts = {line["request_id"]: line["prompt"] for line in lines}
    assert len(prompts) == 4 + 2
    for k, event in enumerate(chat.sent):
        want = [{"role": x["role"], "content": x["content"]} for x in _plain(chat.expected[k]) or []]
        assert [{"role": x["role"], "content": x["content"]} for x in prompts[event["request_id"]]] == want, k
    assert lost.sent[2]["request_id"] not in prompts and lost.sent[1]["request_id"] in prompts


def test_a_build_pins_the_turns_it_resolved_from_and_verify_sees_them_change(tmp_path: Path) -> None:
    from preflog.dataset.build import build
    from preflog.dataset.catalog import verify
    from preflog.dataset.select import Selection

    chat = Chat()
    for _ in range(3):
        chat.turn("say")
    _turns(tmp_path / "log", chat.sent)
    url = _pairs(tmp_path / "log", chat.sent)
    m = build(url, tmp_path / "ds", "v1", Selection(test_fraction=0.0))
    turns = [s for s in m["sources"] if s["path"].startswith("turns/")]
    assert len(turns) == 1 and turns[0]["size"] == (tmp_path / "log" / turns[0]["path"]).stat().st_size
    assert not verify(tmp_path / "ds", "v1").problems and not verify(tmp_path / "ds", "v1").notes
    (tmp_path / "log" / turns[0]["path"]).write_bytes(b"changed")
    assert any(turns[0]["path"] in problem for problem in verify(tmp_path / "ds", "v1").problems)
