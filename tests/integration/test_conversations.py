"""Conversations end to end: SDK -> broker -> processor -> sink -> read_pairs and a dataset build.

A six-turn conversation, turns 1 to 5 given by reference, judged at turns 2 and 5: each pair reads back
with the whole history the client held when it sent the turn (built here from what was sent). A turn
that refers to a request_id that never arrives is flagged by read_pairs and left out of a build, counted.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import preflog
from preflog.dataset.build import build
from preflog.dataset.select import Selection
from preflog.producers import PreflogProducer

from ..conftest import feedback, inference
from .conftest import StartProcessor
from .processor_helpers import at

pytestmark = pytest.mark.integration
TOOL_ANSWER = [
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "calc", "arguments": '{"x":6}'}]},
    {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "calc"},
    {"role": "assistant", "content": "It is 42."},
]


def _conversation(log: PreflogProducer, turns: int = 6) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """Send a conversation (turn 0 in full, the rest by reference); its request_ids and each turn's history."""
    conv, last = f"conv-{uuid.uuid4().hex[:8]}", 0
    transcript: list[dict[str, Any]] = []
    ids: list[str] = []
    histories: list[list[dict[str, Any]]] = []
    for k in range(turns):
        delta = [{"role": "user", "content": f"question {k} of {conv}"}]
        transcript = transcript + delta
        answers: list[Any] = [f"answer {k}.0", f"answer {k}.1"]
        if k == 3:
            answers[1] = {"text": "It is 42.", "messages": TOOL_ANSWER}
        conversation: dict[str, Any] = {"id": conv, "turn": k}
        if k:
            conversation |= {"previous_request_id": ids[-1], "previous_candidate": last}
        rid = str(uuid.uuid4())
        log.log_inference(
            inference(
                request_id=rid, event_time=at(k), prompt=None, prompt_messages=delta if k else transcript,
                candidates=answers, conversation=conversation,
            )
        )  # fmt: skip
        ids.append(rid)
        histories.append(list(transcript))
        last = 1 if k in (1, 3) else 0  # the client continues with this candidate
        chosen = answers[last]
        transcript = transcript + (chosen["messages"] if isinstance(chosen, dict) else [])
        if not isinstance(chosen, dict):
            transcript.append({"role": "assistant", "content": chosen})
    return ids, histories


def _shown(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(m["role"], m["content"], m.get("tool_call_id"), json.dumps(m.get("tool_calls"))) for m in messages]


def test_a_conversation_by_reference_reads_back_whole_and_a_lost_turn_is_flagged_and_left_out(
    log: PreflogProducer, start_processor: StartProcessor, start_sink: Any, tmp_path: Path
) -> None:
    ids, histories = _conversation(log)
    lost, never = str(uuid.uuid4()), str(uuid.uuid4())
    log.log_inference(
        inference(
            request_id=lost, event_time=at(1), prompt=None, prompt_messages=[{"role": "user", "content": "and then?"}],
            conversation={"id": "conv-lost", "turn": 1, "previous_request_id": never, "previous_candidate": 0},
        )
    )  # fmt: skip
    for rid in (ids[2], ids[5], lost):
        log.log_feedback(feedback(rid, event_time=at(7)))
    log.flush()
    start_processor()
    url = f"file://{tmp_path / 'log'}"
    start_sink(url)
    deadline, pairs = time.monotonic() + 45, {}
    while time.monotonic() < deadline:  # the sink writes each table on its own: wait for both
        try:
            pairs = {r["request_id"]: r for r in preflog.read_pairs(url).to_pylist()}
        except FileNotFoundError:
            pairs = {}
        if len(pairs) == 3 and all(pairs[r]["history_problem"] is None for r in (ids[2], ids[5])):
            break
        time.sleep(0.5)
    assert set(pairs) == {ids[2], ids[5], lost}
    for k in (2, 5):
        assert _shown(pairs[ids[k]]["prompt_messages"]) == _shown(histories[k]), k
    assert pairs[lost]["history_problem"] == f"missing_turn: turn {never} never reached the turns table"
    assert pairs[lost]["prompt_messages"][0]["content"] == "and then?"  # kept as sent, never cut

    m = build(url, tmp_path / "ds", "v1", Selection(test_fraction=0.0))
    assert m["left_out"]["history"] == {"missing_turn": 1}
    lines = [json.loads(x) for x in (tmp_path / "ds" / "v1" / "trl-conversational" / "train.jsonl").open()]
    assert sorted(line["request_id"] for line in lines) == sorted([ids[2], ids[5]])
    for line in lines:
        k = ids.index(line["request_id"])
        assert [(x["role"], x["content"]) for x in line["prompt"]] == [(x["role"], x["content"]) for x in histories[k]]
