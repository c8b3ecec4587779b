"""Tool-call trajectories in a build: TRL's conversational shape, a ``tools`` column, OpenAI's rules.

TRL's helpers (``trl.data_utils.maybe_apply_chat_template``) render the rows with a tiny local tokenizer whose
chat template renders tools and tool calls, as a model's template does (no download).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest

from preflog.dataset.build import build
from preflog.dataset.select import Selection
from preflog.sinks.export import openai_problem

from .dataset_helpers import write_log

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Adds two integers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
        },
    }
]
CALL = {"id": "call_1", "name": "add", "arguments": '{"a": 3, "b": 4}'}
#: chosen: call the tool, read its result, answer; rejected: answer at once (the two differ in length)
TRAJECTORY = [
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "7", "name": "add", "tool_call_id": "call_1"},
    {"role": "assistant", "content": "3 + 4 = 7"},
]
TRL_CHOSEN = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": {"a": 3, "b": 4}}}
        ],
    },
    {"role": "tool", "content": "7", "name": "add", "tool_call_id": "call_1"},
    {"role": "assistant", "content": "3 + 4 = 7"},
]
TEMPLATE = (
    "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }}:{{ t.function.parameters | tojson }};"
    "{% endfor %}</tools>\n{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{% if m.content %}{{ m.content }}{% endif %}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<call>{{ c.function.name }}"
    "({{ c.function.arguments | tojson }})</call>{% endfor %}{% endif %}</{{ m.role }}>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _tokenizer() -> Any:
    """A tokenizer built here (a one-word vocabulary) with a chat template that renders tools and tool calls."""
    import transformers
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    model = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    return transformers.PreTrainedTokenizerFast(tokenizer_object=model, chat_template=TEMPLATE, unk_token="[UNK]")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("trajectories")
    log = tmp / "log"
    write_log(log, [("What is 3 + 4?", "3 + 4 = 7", "8", "HUMAN_ANNOTATOR")], tools=json.dumps(TOOLS),
              chosen_messages=TRAJECTORY)  # fmt: skip
    single = [{"role": "assistant", "content": "", "tool_calls": [CALL]}]
    url = write_log(log, [("Add 3 and 4.", "", "7", "HUMAN_ANNOTATOR")], first=1, tools=json.dumps(TOOLS),
                    chosen_messages=single)  # fmt: skip
    write_log(log, [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")], first=2)  # plain text, no tools
    manifest = build(url, tmp / "ds", "t", Selection(test_fraction=0.0))
    return tmp / "ds" / "t", manifest


def test_a_plain_text_log_keeps_role_content_messages_and_says_nothing_of_tools(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")])
    m = build(log, tmp_path / "ds", "p", Selection(test_fraction=0.0))
    (row,) = _lines(tmp_path / "ds" / "p" / "trl-conversational" / "train.jsonl")
    assert row["prompt"] == [{"role": "user", "content": "Name a prime."}]
    assert row["chosen"] == [{"role": "assistant", "content": "7"}] and "tools" not in row
    assert "messages" not in m and "images" not in m
    shard = pq.read_schema(tmp_path / "ds" / "p" / "data" / "train-00000-of-00001.parquet")
    assert "tools" not in shard.names
    assert [f.name for f in shard.field("prompt_messages").type.value_type] == ["role", "content"]


def test_trajectories_are_in_trl_s_chat_shape_with_their_tools(built: tuple[Path, dict[str, Any]]) -> None:
    folder, manifest = built
    rows = {r["pair_id"][-1]: r for r in _lines(folder / "trl-conversational" / "train.jsonl")}
    assert rows["0"]["chosen"] == TRL_CHOSEN  # null keys left out, arguments parsed
    assert rows["0"]["rejected"] == [{"role": "assistant", "content": "8"}]
    assert rows["0"]["tools"] == TOOLS and rows["1"]["tools"] == TOOLS
    assert rows["2"]["tools"] is None and rows["2"]["prompt"] == [{"role": "user", "content": "Name a prime."}]
    assert manifest["messages"] == {"chat_shape": True, "tools": True, "images": False}


def test_the_shards_hold_the_same_messages_as_json_that_datasets_decodes(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, _ = built
    shards = datasets.load_dataset("parquet", data_dir=str(folder / "data"), cache_dir=str(tmp_path))["train"]
    assert shards.features["chosen_messages"] == datasets.List(datasets.Json())
    assert shards.features["tools"] == datasets.Json()
    first = next(r for r in shards if r["pair_id"].endswith("0"))
    assert first["chosen_messages"] == TRL_CHOSEN and first["tools"] == TOOLS  # no spurious None keys


def test_trl_renders_the_rows_loaded_by_datasets_with_their_tools(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import trl.data_utils as data_utils
    tokenizer = _tokenizer()
    folder, _ = built
    loaded = datasets.load_dataset("json", data_files=str(folder / "trl-conversational" / "train.jsonl"),
                                   cache_dir=str(tmp_path))["train"]  # fmt: skip
    row = next(r for r in loaded if r["pair_id"].endswith("0"))
    example = {k: row[k] for k in ("prompt", "chosen", "rejected")}
    assert data_utils.is_conversational(example)
    out = data_utils.maybe_apply_chat_template(example, tokenizer, tools=row["tools"])
    assert out["prompt"].startswith('<tools>add:{"type": "object"') and out["prompt"].endswith("<assistant>")
    assert out["chosen"].startswith('<call>add({"a": 3, "b": 4})</call></assistant>')
    assert "<tool>7</tool>" in out["chosen"] and out["chosen"].endswith("<assistant>3 + 4 = 7</assistant>\n")
    assert out["rejected"] == "8</assistant>\n"


def test_openai_takes_one_tool_calling_answer_with_input_tools_and_leaves_trajectories_out(
    built: tuple[Path, dict[str, Any]],
) -> None:
    folder, manifest = built
    rows = _lines(folder / "openai" / "train.jsonl")
    provenance = _lines(folder / "openai" / "train.provenance.jsonl")
    assert [p["pair_id"][-1] for p in provenance] == ["1", "2"]
    called = rows[0]
    assert called["input"] == {"messages": [{"role": "user", "content": "Add 3 and 4."}], "tools": TOOLS}
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 3, "b": 4}'}}
    assert called["preferred_output"] == [{"role": "assistant", "content": "", "tool_calls": [call]}]
    assert openai_problem(called) is None  # the Python twin takes it too
    assert "tools" not in rows[1]["input"]  # a row without tools says nothing of them
    reason = "preferred_output has 3 messages (exactly one assistant message is allowed)"
    assert manifest["left_out"]["openai"] == {reason: 1}


def test_openai_rules_of_the_python_twin_on_tool_calls_and_images() -> None:
    good = {"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}],
        "non_preferred_output": [{"role": "assistant", "content": "a"}]}  # fmt: skip
    assert openai_problem(good) is None
    no_text = {**good, "preferred_output": [{"role": "assistant", "content": ""}]}
    assert openai_problem(no_text) == "preferred_output has no text"
    pictured = {**good, "input": {"messages": [{"role": "user", "content": "q", "images": [{"uri": "x"}]}]}}
    assert openai_problem(pictured) == "an input message has images (OpenAI's preference format takes text only)"
