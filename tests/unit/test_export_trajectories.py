"""``preflog export`` writes tool-call trajectories, tools and images as a build writes them (nothing stripped)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import preflog
from preflog.dataset.build import build
from preflog.dataset.select import Selection
from preflog.sinks.export import export_rows

from .dataset_helpers import write_log
from .test_dataset_trajectories import TOOLS, TRAJECTORY, TRL_CHOSEN

IMAGE = {"uri": "file:///data/p1.png", "sha256": "ab" * 32, "media_type": "image/png"}


def _log(root: Path, images: bool = True) -> str:
    write_log(root, [("What is 3 + 4?", "3 + 4 = 7", "8", "HUMAN_ANNOTATOR")], tools=json.dumps(TOOLS),
              chosen_messages=TRAJECTORY)  # fmt: skip
    url = write_log(root, [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")], first=1)
    if not images:
        return url
    seen = [{"role": "user", "content": "What is in the picture?", "images": [IMAGE]}]
    return write_log(root, [("What is in the picture?", "a cat", "a dog", "END_USER")], first=2,
                     prompt_messages=seen)  # fmt: skip


def test_the_trl_conversational_export_keeps_tool_calls_tools_and_images(tmp_path: Path) -> None:
    url = _log(tmp_path / "log")
    rows = {r["pair_id"][-1]: r for r in export_rows(preflog.read_pairs(url), "trl-conversational")}
    assert rows["0"]["chosen"] == TRL_CHOSEN and rows["0"]["tools"] == TOOLS
    assert rows["1"]["prompt"] == [{"role": "user", "content": "Name a prime."}] and "tools" not in rows["1"]
    picture = rows["2"]["prompt"][0]
    assert picture["content"] == [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]
    assert rows["2"]["images"] == [{"path": "/data/p1.png"}]


def test_the_export_and_the_build_write_the_same_trajectory(tmp_path: Path) -> None:
    url = _log(tmp_path / "log", images=False)  # a build with images shapes every row's content as parts
    build(url, tmp_path / "ds", "t", Selection(test_fraction=0.0), formats=("trl-conversational",))
    lines = (tmp_path / "ds" / "t" / "trl-conversational" / "train.jsonl").read_text().splitlines()
    built = {r["pair_id"]: r for r in map(json.loads, lines)}
    for row in export_rows(preflog.read_pairs(url), "trl-conversational"):
        line = built[row["pair_id"]]
        assert row["chosen"] == line["chosen"] and row["rejected"] == line["rejected"], row["pair_id"]
        assert row["prompt"] == line["prompt"] and row.get("tools") == line.get("tools"), row["pair_id"]


def test_openai_takes_no_trajectory_and_no_image_and_says_why(tmp_path: Path) -> None:
    url = _log(tmp_path / "log")
    left_out: Counter[str] = Counter()
    written = list(export_rows(preflog.read_pairs(url), "openai", left_out=left_out))
    assert len(written) == 1 and written[0]["input"]["messages"] == [{"role": "user", "content": "Name a prime."}]
    assert left_out == Counter({
        "preferred_output has 3 messages (exactly one assistant message is allowed)": 1,
        "an input message has images (OpenAI's preference format takes text only)": 1,
    })  # fmt: skip
