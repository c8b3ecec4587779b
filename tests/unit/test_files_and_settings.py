"""Reading event files and loading settings."""

from __future__ import annotations

import io

import pytest

from preflog.errors import ConfigError
from preflog.producers.files import dump_event, read_lines
from preflog.settings import load_settings

from ..conftest import T0, inference


def test_lines_are_classified_and_bad_ones_reported() -> None:
    text = "\n".join(
        [
            '{"event_type": "inference", "request_id": "x"}',
            '{"feedback_id": "f", "request_id": "x"}',
            '{"request_id": "y"}',
            "",
            "{broken",
            "[1, 2]",
            '{"event_type": "click"}',
        ]
    )
    lines = list(read_lines(io.StringIO(text)))
    assert [(line.number, line.event_type) for line in lines] == [
        (1, "inference"),
        (2, "feedback"),
        (3, "inference"),
        (5, "unknown"),
        (6, "unknown"),
        (7, "unknown"),
    ]
    assert "not JSON" in (lines[3].error or "")
    assert "expected a JSON object" in (lines[4].error or "")
    assert "'click' is not inference or feedback" in (lines[5].error or "")


def test_dump_then_read_round_trips_times_as_utc_iso() -> None:
    buf = io.StringIO()
    dump_event("inference", inference(event_time=T0), buf)
    assert '"event_time": "2026-11-01T12:00:00Z"' in buf.getvalue()
    (line,) = read_lines(io.StringIO(buf.getvalue()))
    assert line.data is not None and line.data["event_time"] == "2026-11-01T12:00:00Z"


def test_env_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOG_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("PREFLOG_TOPICS__PARTITIONS", "8")
    monkeypatch.setenv("PREFLOG_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("PREFLOG_KAFKA__EXTRA", '{"client.id": "chat"}')
    s = load_settings({"kafka": {"bootstrap_servers": None}, "topics": {"partitions": 2}})
    assert s.kafka.bootstrap_servers == "env:9092"
    assert s.topics.partitions == 2
    conf = s.kafka.client_config()
    assert conf["sasl.password"] == "hunter2" and conf["client.id"] == "chat"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())


def test_invalid_settings_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="needs schema_registry_url"):
        load_settings({"codec": {"framing": "confluent"}})
    with pytest.raises(ConfigError, match=r"topics\.partitions"):
        load_settings({"topics": {"partitions": 0}})
