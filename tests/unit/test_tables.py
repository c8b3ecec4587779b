"""The table catalogue is the one list of outputs: settings, schemas and the sink all agree with it."""

from __future__ import annotations

import pytest

from preflog.schemas.registry import default_store
from preflog.schemas.tables import OUTPUTS, RECORD_TYPES, TABLES, TOPIC_RECORDS
from preflog.settings import Settings, SinkSettings, TopicSettings


def test_every_output_has_a_topic_setting_and_a_schema_with_its_columns():
    topics = TopicSettings()
    for o in OUTPUTS:
        assert o.role in TopicSettings.model_fields, f"TopicSettings needs a field {o.role!r}"
        assert topics.outputs()[o.role] == getattr(topics, o.role)
        fields = {f["name"]: f for f in default_store().latest(o.record).raw["fields"]}
        id_type = fields[o.id_column]["type"]
        assert "string" in (id_type, id_type.get("type") if isinstance(id_type, dict) else None)
        assert fields[o.time_column]["type"]["logicalType"] == "timestamp-millis"


def test_every_topic_role_is_a_setting_and_every_record_type_has_a_schema():
    assert set(TOPIC_RECORDS) | {"ticks"} == set(TopicSettings().all())
    assert sorted(RECORD_TYPES) == default_store().names


def test_groups_read_every_input_and_every_output():
    s = Settings()
    groups = s.groups()
    assert groups[s.sink.group_id] == [s.topics.outputs()[t] for t in TABLES]
    assert s.topics.inference in groups[s.processor.app_id] and s.topics.feedback in groups[s.processor.app_id]


def test_sink_tables_default_to_every_output_and_reject_unknown_ones():
    assert SinkSettings().tables == ["pairs", "unpaired", "unmatched", "dead_letter", "turns"]
    with pytest.raises(ValueError, match="unknown table"):
        SinkSettings(tables=["pairs", "votes"])
