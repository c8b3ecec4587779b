"""Generated traffic holds valid conversations, agent trajectories and image references to real files."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from preflog.producers.generator import GeneratedEvent, TrafficProfile, expected_outcomes, generate
from preflog.producers.images import IMAGE_FAULTS, KINDS, NOWHERE, picture
from preflog.schemas.events import feedback_record, inference_record

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[GeneratedEvent], Path]:
    images = tmp_path_factory.mktemp("data") / "images"
    return generate(TrafficProfile(requests=1500, broken_images=0.2), START, image_dir=images), images


def _inferences(events: list[GeneratedEvent]) -> dict[str, dict[str, Any]]:
    """Each generated inference, validated as the SDK validates it (tool calls and tools normalised)."""
    return {e.key: inference_record(e.record) for e in events if e.event_type == "inference" and e.record}


def test_every_event_validates_and_the_shares_are_as_configured(traffic: tuple[list[GeneratedEvent], Path]) -> None:
    events, _ = traffic
    inferences = _inferences(events)
    counts = {rid: len(r["candidates"]) for rid, r in inferences.items()}
    for e in events:
        if e.event_type == "feedback" and e.record and not e.invalid_reason and e.key in counts:
            feedback_record(e.record, counts[e.key])
    assert sum(1 for e in events if e.event_type == "inference") == len(inferences) > 1400
    turns = sum(1 for r in inferences.values() if r.get("conversation"))
    agents = sum(1 for r in inferences.values() if r.get("tools") and not r.get("conversation"))
    pictures = sum(1 for r in inferences.values() if any(m.get("images") for m in r["prompt_messages"]))
    assert 0.08 < turns / len(inferences) < 0.25
    assert 0.05 < agents / len(inferences) < 0.15 and 0.05 < pictures / len(inferences) < 0.15
    plain = generate(TrafficProfile(requests=300, conversations=0.0, trajectories=0.0, images=0.0), START)
    assert not any(
        e.record.get("conversation") or e.record.get("tools") or len(e.record["prompt_messages"]) != 2
        for e in plain
        if e.event_type == "inference" and e.record
    )


def test_later_turns_refer_to_the_turn_before_and_a_candidate_it_has(
    traffic: tuple[list[GeneratedEvent], Path],
) -> None:
    events, _ = traffic
    inferences = _inferences(events)
    conversations: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in inferences.values():
        if r.get("conversation"):
            conversations[r["conversation"]["id"]].append(r)
    assert len(conversations) > 20
    truth = expected_outcomes(events)
    judged_turns = unjudged_turns = 0
    for turns in conversations.values():
        turns.sort(key=lambda r: r["conversation"]["turn"])
        assert [t["conversation"]["turn"] for t in turns] == list(range(len(turns)))
        assert 3 <= len(turns) <= 8
        first = turns[0]
        assert first["conversation"]["previous_request_id"] is None and first["prompt_messages"][0]["role"] == "system"
        for before, turn in pairwise(turns):
            conv = turn["conversation"]
            assert conv["previous_request_id"] == before["request_id"]
            assert 0 <= conv["previous_candidate"] < len(before["candidates"])
            assert turn["event_time"] > before["event_time"]
            assert [m["role"] for m in turn["prompt_messages"]] == ["user"]  # only what follows the candidate
        for turn in turns:
            if turn["request_id"] in truth.unmatched.get("NO_FEEDBACK", set()):
                unjudged_turns += 1
            else:
                judged_turns += 1
    assert judged_turns > 30 and unjudged_turns > 30  # some turns judged, not all


def test_trajectories_call_offered_tools_and_answer_each_call(traffic: tuple[list[GeneratedEvent], Path]) -> None:
    events, _ = traffic
    agents = [r for r in _inferences(events).values() if r.get("tools")]
    assert len(agents) > 50
    lengths_differ = 0
    for r in agents:
        offered = {t["function"]["name"] for t in json.loads(r["tools"])}
        lengths = set()
        for c in r["candidates"]:
            messages = c["messages"]
            assert messages[-1] == {**messages[-1], "role": "assistant", "content": c["text"]}
            open_calls: dict[str, str] = {}
            for m in messages[:-1]:
                if m["role"] == "assistant":
                    assert not open_calls and m["tool_calls"]
                    for call in m["tool_calls"]:
                        assert call["name"] in offered and isinstance(json.loads(call["arguments"]), dict)
                        open_calls[call["id"]] = call["name"]
                else:
                    assert m["role"] == "tool" and open_calls.pop(m["tool_call_id"]) == m["name"]
            assert not open_calls
            lengths.add(len(messages))
        lengths_differ += len(lengths) > 1
    assert lengths_differ == len(agents)  # chosen and rejected, whichever they are, take different paths
    assert any(len(c["messages"]) >= 5 for r in agents for c in r["candidates"])


def _path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    return Path(unquote(parsed.path))


def test_image_references_hash_the_files_written_except_the_broken_ones(
    traffic: tuple[list[GeneratedEvent], Path],
) -> None:
    events, directory = traffic
    inferences = _inferences(events)
    faults = {(rid, uri): reason for rid, uri, reason in expected_outcomes(events).image_faults}
    good = 0
    for rid, r in inferences.items():
        for m in r["prompt_messages"]:
            for image in m.get("images") or []:
                assert image["media_type"] == "image/png"
                path = _path(image["uri"])
                assert path.parent == directory.resolve()
                reason = faults.pop((rid, image["uri"]), None)
                if reason == "missing file":
                    assert not path.exists()
                    continue
                data = path.read_bytes()
                assert data.startswith(b"\x89PNG\r\n\x1a\n")
                digest = hashlib.sha256(data).hexdigest()
                assert (digest == image["sha256"]) == (reason is None)
                good += reason is None
    assert not faults  # every broken reference is on an inference that was sent
    reasons = {reason for _, _, reason in expected_outcomes(events).image_faults}
    assert good > 50 and reasons == set(IMAGE_FAULTS)
    assert not list(directory.glob(".*"))  # no half-written pictures left behind


def test_pictures_are_the_same_bytes_every_time_and_not_written_without_a_directory() -> None:
    assert picture("bars", 3) == picture("bars", 3) != picture("bars", 4)
    assert len({picture(kind, 0) for kind in KINDS}) == len(KINDS)
    events = generate(TrafficProfile(requests=200, images=0.5), START)
    uris = [
        image["uri"]
        for e in events
        if e.event_type == "inference" and e.record
        for m in e.record["prompt_messages"]
        for image in m.get("images") or []
    ]
    assert uris and all(uri.startswith(NOWHERE) for uri in uris)


def test_each_judged_turn_counts_like_a_single_request() -> None:
    """Pairs expected of conversations and trajectories are those of their feedback, as for any request."""
    from .test_generator import expanded_pairs

    events = generate(TrafficProfile(requests=400, conversations=0.5, trajectories=0.3, images=0.3), START)
    truth = expected_outcomes(events)
    inferences = _inferences(events)
    pairs = expanded_pairs(events, inferences)
    assert truth.pairs == pairs
    shaped = {rid for rid, r in inferences.items() if r.get("conversation") or r.get("tools")}
    assert {fid for fid, _, _ in pairs} & {
        e.record["feedback_id"] for e in events if e.event_type == "feedback" and e.record and e.key in shaped
    }
