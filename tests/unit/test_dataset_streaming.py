"""The streaming dataset build gives today's bytes, and runs on a log larger than its memory limit.

``golden_builds.json`` holds the sha256 of every data file (and the content hashes that hold no path) that the
in-memory build (preflog before the streaming rewrite, commit 162403e) wrote for ``adversarial_log``: stray
copies, a copy sorting first, blank ids, rankings with ties, contradictions, signals. The streaming build must
write the same bytes for the same input and options.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflog.dataset.build import FORMATS, build
from preflog.dataset.catalog import verify
from preflog.dataset.select import PROMPT_KEY, Selection
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage

from .adversarial_log import EVALUATION, adversarial_log, grow
from .dataset_helpers import SAMPLE

GOLDEN = json.loads((Path(__file__).parent / "golden_builds.json").read_text())


def _data_files(m: dict[str, Any]) -> dict[str, str]:
    return {
        f["path"]: f["sha256"] for f in m["files"] if f["path"] != "README.md" and not f["path"].startswith("state/")
    }


def _selections(evaluation: Path) -> dict[str, Selection]:
    return {
        "default": Selection(),
        "options": Selection(
            test_fraction=0.2, validation_fraction=0.1, seed=7, contradictions="keep",
            caps=(("user_id", 40), ("model", 150)), kto_desirable=1.0, kto_undesirable=-1.0, kto_implicit=True,
            decontaminate=str(evaluation), ngram=5, min_margin=0.5,
        ),
        "filtered": Selection(
            sources=("HUMAN_ANNOTATOR", "END_USER"), start="2026-11-01", end="2026-11-03", tenants=("t1",),
            contradictions="drop", explicit=True,
        ),
    }  # fmt: skip


def test_the_streaming_build_writes_the_bytes_the_in_memory_build_wrote(tmp_path: Path) -> None:
    url = adversarial_log(tmp_path / "log")
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text("\n".join(json.dumps({"prompt": p}) for p in EVALUATION) + "\n")
    selections = _selections(evaluation)
    for name, selection in selections.items():
        m = build(url, tmp_path / "ds", name, selection, memory_limit="512MB")
        assert _data_files(m) == GOLDEN[name]["files"], name
        if "content_hash" in GOLDEN[name]:
            assert m["content_hash"] == GOLDEN[name]["content_hash"], name
        assert verify(tmp_path / "ds", name).ok
    grow(tmp_path / "log")
    later = build(url, tmp_path / "ds", "options-inc", selections["options"], since="options")
    assert _data_files(later) == GOLDEN["options-inc"]["files"]
    full = build(url, tmp_path / "ds", "options-full", selections["options"])
    assert later["content_hash"] == full["content_hash"]


def test_a_build_chooses_its_formats_and_compresses_them_and_says_what_each_took(tmp_path: Path) -> None:
    url = adversarial_log(tmp_path / "log")
    whole = build(url, tmp_path / "ds", "whole", Selection())
    m = build(url, tmp_path / "ds", "some", Selection(), formats=("parquet", "trl"), compress="gzip")
    assert sorted(m["bytes"]) == ["data", "state", "trl"] and m["formats"] == ["parquet", "trl"]
    assert "formats" not in whole and sorted(whole["bytes"]) == sorted(["data", "state", *FORMATS[1:]])
    folder = tmp_path / "ds" / "some"
    assert m["bytes"]["trl"] == sum(p.stat().st_size for p in (folder / "trl").iterdir())
    for split in ("train", "test"):  # the same lines as the uncompressed build's
        plain = (tmp_path / "ds" / "whole" / "trl" / f"{split}.jsonl").read_bytes()
        assert gzip.decompress((folder / "trl" / f"{split}.jsonl.gz").read_bytes()) == plain
    assert (
        _data_files(m)["data/train-00000-of-00001.parquet"] == _data_files(whole)["data/train-00000-of-00001.parquet"]
    )
    card = (folder / "README.md").read_text()
    assert "path: trl/train.jsonl.gz" in card and "config_name: kto" not in card
    assert "formats written: parquet, trl (JSON lines compression: gzip" in card
    assert verify(tmp_path / "ds", "some").ok
    with pytest.raises(ValueError, match="choose from parquet"):
        build(url, tmp_path / "ds", "bad", Selection(), formats=("csv",))
    with pytest.raises(ValueError, match="at least 512MB"):
        build(url, tmp_path / "ds", "bad", Selection(), memory_limit="400MB")
    assert not (tmp_path / "ds" / "bad").exists()


def _big_log(
    root: Path, pairs: int, sizes: tuple[tuple[int, int], ...] = ((1000, 3000), (500, 2000), (500, 2000)), seed: int = 3
) -> tuple[str, int]:
    """``pairs`` pairs of texts of ``sizes`` (every tenth an exact duplicate of the one before); URL and text bytes."""
    rng = random.Random(seed)
    words = [f"w{i}{'x' * (i % 7)}" for i in range(5000)]
    corpus = " ".join(rng.choice(words) for _ in range(600_000))
    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    storage = Storage(f"file://{root}")
    text = 0
    per_file = 4000
    previous: list[str] = []
    for first in range(0, pairs, per_file):
        records = []
        for i in range(first, min(first + per_file, pairs)):
            texts = []
            for low, high in sizes:
                start, n = rng.randrange(len(corpus) - high), rng.randrange(low, high)
                texts.append(corpus[start : start + n])
            if i % 10 == 9:
                texts = previous  # an exact duplicate of the pair before
            previous = texts
            text += sum(len(t) for t in texts)
            prompt, chosen, rejected = texts
            records.append({
                **SAMPLE, "pair_id": f"00000000-0000-4000-8000-{i:012d}", "prompt": prompt, "chosen": chosen,
                "feedback_id": f"00000000-0000-4000-9000-{i:012d}", "request_id": f"00000000-0000-4000-a000-{i:012d}",
                "rejected": rejected, "prompt_messages": [{"role": "user", "content": prompt}],
            })  # fmt: skip
        name = file_name("preflog.pairs.v1", 0, first, first + len(records) - 1)
        storage.put(f"pairs/dt=2026-11-01/{name}", encode(to_table(records, schema)))
    storage.put(
        f"pairs/dt=2026-11-02/{file_name('preflog.pairs.v1', 1, 0, 3999)}",
        storage.read(f"pairs/dt=2026-11-01/{file_name('preflog.pairs.v1', 0, 0, 3999)}"),
    )  # a stray copy of the first file
    return f"file://{root}", text


@pytest.mark.heavy  # 95 s: .ci/run's heavy step runs it
def test_a_build_larger_than_its_memory_limit_gives_the_unlimited_builds_content(tmp_path: Path) -> None:
    url, text = _big_log(tmp_path / "log", 120_000)
    assert text > 512 * 10**6  # the texts alone are above the limit (with messages and prompt keys, twice that)
    formats = ("parquet", "trl")
    small = build(url, tmp_path / "ds", "small", Selection(), memory_limit="512MB", formats=formats, compress="gzip")
    large = build(url, tmp_path / "ds", "large", Selection(), memory_limit="6GB", formats=formats, compress="gzip")
    assert small["content_hash"] == large["content_hash"]
    assert small["pairs_selected"] == 120_000 and small["merged_duplicates"] == 12_000
    lines = gzip.decompress((tmp_path / "ds" / "small" / "trl" / "train.jsonl.gz").read_bytes()).decode().splitlines()
    ids = [json.loads(line)["pair_id"] for line in lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == small["rows"]["train"]


_SPACES = ["a", "B", " ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", "\u00a0", "\u3000", "É", "ß", "x y"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_SPACES), max_size=10).map("".join), min_size=1, max_size=50))
def test_the_prompt_key_takes_the_regular_expression_only_where_it_changes_something(prompts: list[str]) -> None:
    import duckdb
    import pyarrow as pa

    regex = "lower(regexp_replace(trim(prompt), '\\s+', ' ', 'g'))"  # the key as builds before 2026-12 wrote it
    con = duckdb.connect()
    con.register("t", pa.table({"prompt": [*prompts, None]}))
    assert con.execute(f"SELECT count(*) FROM t WHERE {PROMPT_KEY} IS DISTINCT FROM {regex}").fetchall() == [(0,)]
