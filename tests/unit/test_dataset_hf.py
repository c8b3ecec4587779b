"""Hugging Face ``datasets`` opens a build (every config) and the audit log's datasets-ready view.

TRL's documented dataset types are checked column by column: standard preference (prompt, chosen,
rejected as text), conversational preference (lists of role/content messages) and unpaired
preference for KTO (prompt, completion, boolean label).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pytest

from preflog.dataset.build import build
from preflog.dataset.select import Selection
from preflog.sinks.read import read_pairs

from .dataset_helpers import PAIRS, ranking, rows, signal, write_table

MESSAGES = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hf")
    log = tmp / "log"
    write_table(log, "pairs", rows(PAIRS) + ranking(3, "Rank these.", ["a", "b", "c"], [1, 2, 2]))
    write_table(log, "unpaired", [signal(i, f"  Question   {i}? ", "ok", 0, i % 3 != 0) for i in range(40)])
    build(f"file://{log}", tmp / "ds", "hf", Selection(test_fraction=0.3))
    return tmp / "ds" / "hf"


def _load(*args: Any, cache: Path, **kwargs: Any) -> datasets.DatasetDict:
    loaded = datasets.load_dataset(*args, cache_dir=str(cache), **kwargs)
    assert isinstance(loaded, datasets.DatasetDict)
    return loaded


def test_the_parquet_shards_and_the_card_s_default_config_open_as_dataset_dicts(folder: Path, tmp_path: Path) -> None:
    shards = _load("parquet", data_dir=str(folder / "data"), cache=tmp_path)
    assert set(shards) == {"train", "test"}
    assert sum(shards[s].num_rows for s in shards) == 42 + 2  # PAIRS' rows, and the ranking's two decided pairs
    provenance = {"pair_id", "request_id", "model", "source", "kind", "margin", "votes", "weight"}
    assert provenance <= set(shards["train"].features)
    default = _load(str(folder), cache=tmp_path)  # the card's default config: TRL's standard format
    assert {s: default[s].num_rows for s in default} == {s: shards[s].num_rows for s in shards}
    assert list(default["train"].features)[:3] == ["prompt", "chosen", "rejected"]


def test_trl_standard_and_conversational_have_trl_s_columns_and_types(folder: Path, tmp_path: Path) -> None:
    standard = _load(str(folder), "trl", cache=tmp_path)["train"]
    for column in ("prompt", "chosen", "rejected"):
        assert standard.features[column] == datasets.Value("string")
    conversational = _load(str(folder), "trl-conversational", cache=tmp_path)["train"]
    for column in ("prompt", "chosen", "rejected"):
        assert conversational.features[column] in (datasets.List(MESSAGES[0]), MESSAGES)  # a list of role/content
    first = conversational[0]
    assert first["chosen"][0]["role"] == "assistant" and first["prompt"][-1]["role"] == "user"
    assert standard.num_rows == conversational.num_rows


def test_kto_nemo_listwise_and_ties_open_with_their_columns(folder: Path, tmp_path: Path) -> None:
    kto = _load(str(folder), "kto", cache=tmp_path)
    train = kto["train"]
    assert train.features["prompt"] == datasets.Value("string") == train.features["completion"]
    assert train.features["label"] == datasets.Value("bool")
    assert sum(kto[s].num_rows for s in kto) == 40 and {True, False} == set(train["label"])
    nemo = _load(str(folder), "nemo", cache=tmp_path)["train"]
    assert {"prompt", "chosen_response", "rejected_response"} <= set(nemo.features)
    listwise = _load(str(folder), "listwise", cache=tmp_path)
    (row,) = [r for s in listwise for r in listwise[s]]
    assert (row["chosen"], row["rejected"], row["ranks"]) == ("a", ["b", "c"], [1, 2, 2])
    ties = _load(str(folder), "ties", cache=tmp_path)
    assert [r["relation"] for s in ties for r in ties[s]] == ["tie"]


def test_two_builds_of_one_name_in_two_folders_each_load_their_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`datasets` caches a folder's rows under its name and its card: each build's card must key its own cache.

    The load is the user's, with no ``cache_dir``: the default cache, made private to the test.
    """
    for var, where in (("HF_HOME", "hf"), ("HF_DATASETS_CACHE", "hf/datasets"), ("HF_DATASETS_OFFLINE", "1")):
        monkeypatch.setenv(var, where if var.endswith("OFFLINE") else str(tmp_path / where))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "hf" / "datasets" / "downloads")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    sizes = {}
    for clone, pairs in (("a", PAIRS), ("b", PAIRS[:20])):  # another clone, or a deleted folder built again
        log = tmp_path / clone / "log"
        write_table(log, "pairs", rows(pairs))
        write_table(log, "unpaired", [signal(i, f"Q{i}?", "ok", 0, True) for i in range(len(pairs) // 2)])
        manifest = build(f"file://{log}", tmp_path / clone / "ds", "dpo-v1", Selection(test_fraction=0.3))
        sizes[clone] = (manifest["rows"], len(pairs) // 2)
    assert sizes["a"] != sizes["b"]
    for clone in ("a", "b"):
        folder = str(tmp_path / clone / "ds" / "dpo-v1")
        default = datasets.load_dataset(folder)
        assert {s: default[s].num_rows for s in default} == {s: n for s, n in sizes[clone][0].items() if n}, clone
        kto = datasets.load_dataset(folder, "kto")
        assert sum(kto[s].num_rows for s in kto) == sizes[clone][1], clone
    assert sorted(p.name for p in (tmp_path / "hf" / "datasets").iterdir() if p.is_dir()) == ["dpo-v1"]  # one name


def test_the_audit_log_s_tables_load_through_the_datasets_ready_view(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_table(log, "pairs", rows(PAIRS[:5]))
    url = write_table(log, "unpaired", [signal(i, "Thumbs?", "ok", 0, True) for i in range(3)])
    for table, n in (("pairs", 5), ("unpaired", 3)):
        view = read_pairs(url, table=table, maps_as_lists=True)
        loaded = datasets.Dataset(view)
        assert loaded.num_rows == n
        metadata = "feedback_metadata" if table == "pairs" else "sampling"
        assert metadata in loaded.features
        path = tmp_path / f"{table}.parquet"
        import pyarrow.parquet as pq

        pq.write_table(view, path)  # the view written out opens with load_dataset too
        assert _load("parquet", data_files=str(path), cache=tmp_path)["train"].num_rows == n
