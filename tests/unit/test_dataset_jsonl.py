"""The build's JSON lines (made by DuckDB) against ``preflog export``'s Python converters, on hostile rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflog.dataset.jsonl import write_lines
from preflog.sinks.export import FORMATS, openai_problem

ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", ""])
TEXT = st.text(max_size=6)  # empty, unicode, quotes, control characters
MESSAGES = st.none() | st.lists(st.fixed_dictionaries({"role": ROLES, "content": TEXT}), max_size=3)
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema(
    [("pair_id", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()),
     ("prompt_messages", pa.list_(MESSAGE)), ("chosen_messages", pa.list_(MESSAGE)),
     ("rejected_messages", pa.list_(MESSAGE)), ("split", pa.string())]
    + [(c, pa.string()) for c in ("request_id", "model", "model_version", "source", "kind")]
    + [(c, pa.float64()) for c in ("margin", "chosen_score", "rejected_score", "weight")] + [("votes", pa.int64())]
)  # fmt: skip


def _rows(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 8))
    return [
        {"pair_id": f"p{i:03d}", "prompt": draw(TEXT), "chosen": draw(TEXT), "rejected": draw(TEXT),
         "prompt_messages": draw(MESSAGES), "chosen_messages": draw(MESSAGES), "rejected_messages": draw(MESSAGES),
         "split": "train"}
        for i in range(n)
    ]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_openai_lines_and_their_left_out_reasons_are_those_of_the_python_rules(tmp_path: Path, data: Any) -> None:
    rows = _rows(data.draw)
    table = pa.Table.from_pylist(rows, SCHEMA)
    for fmt in ("openai", "trl-conversational"):
        folder = tmp_path / f"{fmt}-{data.draw(st.integers(0, 10**9))}"
        paths, left_out = write_lines(table, fmt, folder, ("train",))
        raw = {"model": {"name": None, "version": None}, "source": {"type": None}, "feedback_kind": None,
               "feedback_id": None, "request_id": None, "explicit": None, "margin": None, "chosen_score": None,
               "rejected_score": None}  # fmt: skip
        expected = [FORMATS[fmt][1](raw | r) for r in rows]
        reasons: dict[str, int] = {}
        if fmt == "openai":
            kept = []
            for r, out in zip(rows, expected, strict=True):
                problem = openai_problem(out)
                if problem is None:
                    kept.append((r, out))
                else:
                    reasons[problem] = reasons.get(problem, 0) + 1
            expected = [out for _, out in kept]
        assert left_out == reasons
        written = folder / fmt / "train.jsonl"
        text = written.read_text(encoding="utf-8") if paths else ""
        lines = [json.loads(line) for line in text.split("\n")[:-1]]  # not splitlines: U+0085, U+2028 are text
        keys = ("input", "prompt", "chosen", "rejected", "preferred_output", "non_preferred_output")
        assert [{k: v for k, v in line.items() if k in keys} for line in lines] == [
            {k: v for k, v in row.items() if k in keys} for row in expected
        ]
        if fmt == "openai" and paths:
            beside = (folder / fmt / "train.provenance.jsonl").read_text().split("\n")[:-1]
            assert [json.loads(b)["pair_id"] for b in beside] == [r["pair_id"] for r, _ in kept]
