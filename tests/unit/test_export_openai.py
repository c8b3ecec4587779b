"""OpenAI preference rows: every rule checked field by field; a row that breaks one is left out with its reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.export import export_rows, openai_problem

from ..samples import all_samples

SAMPLE = all_samples()["PreferencePair"]
TOOL_CALL = [
    {"role": "assistant", "content": "calling the calculator"},
    {"role": "tool", "content": "7"},
    {"role": "assistant", "content": "7"},
]


def _table(*overrides: dict[str, Any]) -> Any:
    rows = [{**SAMPLE, "pair_id": f"00000000-0000-4000-8000-{i:012d}", **o} for i, o in enumerate(overrides)]
    return to_table(rows, arrow_schema(default_store().latest("PreferencePair").raw))


def test_a_candidate_with_tool_messages_is_left_out_with_its_reason_and_the_rest_is_written() -> None:
    table = _table({}, {"chosen_messages": TOOL_CALL}, {"rejected": "7"}, {"prompt_messages": []})
    left_out: Counter[str] = Counter()
    rows = list(export_rows(table, "openai", left_out=left_out))
    assert len(rows) == 2  # the plain row, and the one with no prompt messages (its prompt text is used)
    assert all(openai_problem(r) is None for r in rows)
    assert left_out == Counter(
        {
            "preferred_output has 3 messages (exactly one assistant message is allowed)": 1,
            "the preferred and non-preferred outputs are the same": 1,
        }
    )


GOOD = {
    "input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]},
    "preferred_output": [{"role": "assistant", "content": "Hello."}],
    "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"input": {"messages": []}}, "no input messages"),
        ({"input": {"messages": [{"role": "tool", "content": "x"}]}}, "role 'tool'"),
        ({"input": {"messages": [{"role": "user", "content": ""}]}}, "an input message has no text"),
        ({"preferred_output": []}, "preferred_output has 0 messages"),
        ({"non_preferred_output": [{"role": "user", "content": "x"}]}, "is a 'user' message"),
        ({"preferred_output": [{"role": "assistant", "content": ""}]}, "preferred_output has no text"),
        ({"non_preferred_output": GOOD["preferred_output"]}, "are the same"),
    ],
)
def test_each_rule(change: dict[str, Any], reason: str) -> None:
    assert openai_problem(GOOD) is None
    problem = openai_problem({**GOOD, **change})
    assert problem is not None and reason in problem
