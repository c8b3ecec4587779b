"""Images in a build: TRL's vision preference layout, and each referenced image checked against its sha256."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import datasets
import pytest
from PIL import Image

from preflog.dataset import images as checks
from preflog.dataset.build import build
from preflog.dataset.images import MISMATCH
from preflog.dataset.select import Selection

from .dataset_helpers import write_log


def _png(path: Path, colour: str) -> str:
    """A 2x2 PNG at ``path``; its sha256."""
    out = io.BytesIO()
    Image.new("RGB", (2, 2), colour).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return hashlib.sha256(out.getvalue()).hexdigest()


def _asked(n: int, question: str, uri: str, sha256: str, log: Path) -> str:
    image = {"uri": uri, "sha256": sha256, "media_type": "image/png"}
    message = [{"role": "user", "content": question, "images": [image]}]
    return write_log(log, [(question, f"yes {n}", f"no {n}", "HUMAN_ANNOTATOR")], first=n, prompt_messages=message)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path, list[str]]:
    tmp = tmp_path_factory.mktemp("images")
    log, red = tmp / "log", tmp / "red.png"
    good = _png(red, "red")
    read: list[str] = []
    real = checks.sha256_of

    def counted(uri: str, options: Any = None) -> str | None:
        read.append(uri)
        return real(uri, options)

    patch = pytest.MonkeyPatch()
    patch.setattr(checks, "sha256_of", counted)
    try:
        _asked(0, "What colour?", f"file://{red}", good, log)
        _asked(1, "Which colour is it?", f"file://{red}", good, log)  # the same image again: read once
        _asked(2, "And this one?", f"file://{red}", "0" * 64, log)  # the bytes are not those hashed
        _asked(3, "Still there?", f"file://{tmp / 'gone.png'}", "1" * 64, log)  # unreachable
        url = write_log(log, [("Name a prime.", "7", "9", "HUMAN_ANNOTATOR")], first=4)  # no image at all
        manifest = build(url, tmp / "ds", "v", Selection(test_fraction=0.0))
    finally:
        patch.undo()
    return tmp / "ds" / "v", manifest, red, read


def test_each_image_is_read_once_and_mismatched_and_unreachable_ones_are_counted(
    built: tuple[Path, dict[str, Any], Path, list[str]],
) -> None:
    folder, manifest, red, read = built
    assert sorted(read) == sorted({f"file://{red}", f"file://{red.parent / 'gone.png'}"})  # once per image
    assert manifest["images"] == {
        "referenced": 3,  # (uri, sha256): red as hashed, red with a wrong hash, the missing file
        "ok": 1,
        "mismatched": 1,
        "unreachable": 1,
        "rows_left_out": {MISMATCH: 1},
    }
    ids = [r["pair_id"][-1] for r in _lines(folder / "trl-conversational" / "train.jsonl")]
    assert ids == ["0", "1", "3", "4"]  # the mismatched row is left out, the unreachable one kept
    assert manifest["rows"]["train"] == 4
    card = (folder / "README.md").read_text()
    assert f"(their 1 rows left out: {MISMATCH}); unreachable from the build 1 (their rows kept" in card


def test_rows_follow_trl_s_vision_layout(built: tuple[Path, dict[str, Any], Path, list[str]]) -> None:
    folder, manifest, red, _ = built
    rows = {r["pair_id"][-1]: r for r in _lines(folder / "trl-conversational" / "train.jsonl")}
    first = rows["0"]
    assert list(first)[:4] == ["prompt", "chosen", "rejected", "images"]  # TRL's vision preference columns
    assert first["prompt"] == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}
    ]
    assert first["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": "yes 0"}]}]
    assert first["images"] == [{"path": str(red)}]
    assert rows["4"]["images"] == [] and rows["4"]["prompt"][0]["content"] == [
        {"type": "text", "text": "Name a prime."}
    ]
    assert manifest["messages"] == {"chat_shape": True, "tools": False, "images": True}


def test_the_shards_open_the_images_as_datasets_images(
    built: tuple[Path, dict[str, Any], Path, list[str]], tmp_path: Path
) -> None:
    folder, _, _, _ = built
    shards = datasets.load_dataset("parquet", data_dir=str(folder / "data"), cache_dir=str(tmp_path))["train"]
    assert shards.features["images"] == datasets.List(datasets.Image())
    first = next(r for r in shards if r["pair_id"].endswith("0"))
    (picture,) = first["images"]
    assert picture.size == (2, 2) and picture.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert first["prompt_messages"] == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}
    ]


def test_trl_fills_the_image_placeholders_of_a_loaded_row(
    built: tuple[Path, dict[str, Any], Path, list[str]], tmp_path: Path
) -> None:
    import trl.data_utils as data_utils

    folder, _, _, _ = built
    shards = datasets.load_dataset("parquet", data_dir=str(folder / "data"), cache_dir=str(tmp_path))["train"]
    first = next(r for r in shards if r["pair_id"].endswith("0"))
    filled = data_utils.prepare_multimodal_messages(first["prompt_messages"], images=first["images"])
    assert filled[0]["content"][0]["image"] is first["images"][0]  # one placeholder per image, in order


def test_an_answer_s_images_get_no_placeholder_the_images_column_does_not_list(tmp_path: Path) -> None:
    red = tmp_path / "red.png"
    image = {"uri": f"file://{red}", "sha256": _png(red, "red"), "media_type": "image/png"}
    url = write_log(tmp_path / "log", [("Draw it.", "Here.", "No.", "HUMAN_ANNOTATOR")],
                    prompt_messages=[{"role": "user", "content": "Draw it.", "images": [image]}],
                    chosen_messages=[{"role": "assistant", "content": "Here.", "images": [image]}])  # fmt: skip
    build(url, tmp_path / "ds", "v", Selection(test_fraction=0.0))
    (row,) = _lines(tmp_path / "ds" / "v" / "trl-conversational" / "train.jsonl")
    parts = [p for m in row["prompt"] + row["chosen"] + row["rejected"] for p in m["content"]]
    assert sum(p == {"type": "image"} for p in parts) == len(row["images"]) == 1
    assert row["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": "Here."}]}]
