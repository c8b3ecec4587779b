"""The report in bounded memory: the same figures as the in-memory report, and under a limit smaller than its input.

``GOLDEN`` is what the report gave before it streamed (``summary.json`` without ``generated_at`` and the log's
path, and the sha256 of each ``figures/*.json``) on :func:`tests.unit.adversarial_log.adversarial_log` after
:func:`~tests.unit.adversarial_log.grow`: every figure, both unfiltered and filtered by source and date.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from preflog.dataset.select import Selection
from preflog.report.build import report
from preflog.report.models import PRIOR
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage

from .adversarial_log import adversarial_log, grow
from .dataset_helpers import SAMPLE

GOLDEN: dict[str, Any] = {
    "report": {
        "figures": {
            "ab": {
                "flags": [],
                "notes": [],
                "summary": {
                    "a": "acme-mini@-",
                    "b": "acme-mini@1.4",
                    "decided": True,
                    "high": 1.0,
                    "length_controlled": 0.9999999434463894,
                    "low": 0.9872309526893243,
                    "n": 297,
                    "rate": 1.0,
                },
                "title": "A/B: acme-mini@1.4 against acme-mini@-, win rate by feedback source (95% Wilson interval)",
            },
            "coverage": {
                "flags": [],
                "notes": [],
                "summary": {"inferences": 585, "inferences_without_feedback": 0, "judgements": 1036},
                "title": "Judgements per inference, by feedback kind and source",
            },
            "health": {
                "flags": [],
                "notes": [],
                "summary": {"joined": "1,036 (100.0%)"},
                "title": "Joined, unmatched and dead-lettered records per 6 hours (share of all)",
            },
            "human_agreement": {
                "flags": [],
                "notes": ["only 13 comparisons judged by two or more annotators: too few to rely on"],
                "summary": {"comparisons": 13, "krippendorff_alpha": None, "unanimous": 1.0},
                "title": "Agreement between human annotators on the same comparisons",
            },
            "join_latency": {
                "flags": [],
                "notes": [],
                "summary": {"n": 1036, "p50_s": 1547.017, "p90_s": 3176.339, "p99_s": 3550.4821},
                "title": "Join latency: event time from inference to its feedback (seconds)",
            },
            "leaderboard": {
                "flags": [],
                "notes": [
                    "acme-chat@2026.11 and acme-chat@2026.10 overlap in their "
                    "intervals: the order of the top two is not settled"
                ],
                "summary": {"bootstrap_rounds": 200, "models": 4, "pairs": 938, "top": "acme-chat@2026.11"},
                "title": "Leaderboard: Bradley-Terry strength (Elo scale, 95% bootstrap interval)",
            },
            "length_bias": {
                "flags": [],
                "notes": [],
                "summary": {
                    "model:acme-chat@2026.10": 0.4837,
                    "model:acme-chat@2026.11": 0.4982,
                    "model:acme-mini@1.4": 0.5213,
                    "source:END_USER": 0.5086,
                    "source:HUMAN_ANNOTATOR": 0.5141,
                    "source:REWARD_MODEL": 0.4797,
                },
                "title": "Share of pairs whose chosen answer is the longer one",
            },
            "length_bias_over_time": {
                "flags": [],
                "notes": [],
                "summary": {
                    "END_USER": "-0.00658 log-odds per 6 hours, p = 0.85",
                    "HUMAN_ANNOTATOR": "-0.00303 log-odds per 6 hours, p = 0.93",
                    "REWARD_MODEL": "+0.00872 log-odds per 6 hours, p = 0.79",
                },
                "title": "Longer-chosen share per 6 hours, by source (drift tested)",
            },
            "position_bias": {
                "flags": [],
                "notes": [],
                "summary": {},
                "title": "Win rate by candidate position, by source (pairwise, one model)",
            },
            "rm_agreement": {
                "flags": [],
                "notes": [
                    "only 19 comparisons judged by both: too few to rely on",
                    "a comparison the reward model scored as a tie (within its margin) made no pair: not counted",
                ],
                "summary": {"accuracy": 1.0, "comparisons": 19, "kappa": None, "reward_model": "judge-0 -"},
                "title": "Reward model against people on the same comparisons",
            },
            "win_matrix": {
                "flags": [],
                "notes": [],
                "summary": {},
                "title": "Win rate of the row model against the column model",
            },
        },
        "meta": {"from": "2026-11-01 12:05 UTC", "pairs": 938, "selection": {}, "to": "2026-11-04 11:59 UTC"},
    },
    "report-filtered": {
        "figures": {
            "ab": {
                "flags": [],
                "notes": [],
                "summary": {
                    "a": "acme-mini@-",
                    "b": "acme-mini@1.4",
                    "decided": True,
                    "high": 1.0,
                    "length_controlled": 0.9999998031547846,
                    "low": 0.9536287883460773,
                    "n": 79,
                    "rate": 1.0,
                },
                "title": "A/B: acme-mini@1.4 against acme-mini@-, win rate by feedback source (95% Wilson interval)",
            },
            "coverage": {
                "flags": [],
                "notes": [
                    "unmatched and dead-lettered records are filtered by "
                    "date only (not by model, source, kind or tenant): "
                    "their rates compare them with the selected "
                    "judgements only"
                ],
                "summary": {"inferences": 205, "inferences_without_feedback": 0, "judgements": 240},
                "title": "Judgements per inference, by feedback kind and source",
            },
            "health": {
                "flags": [],
                "notes": [
                    "unmatched and dead-lettered records are filtered by "
                    "date only (not by model, source, kind or tenant): "
                    "their rates compare them with the selected judgements "
                    "only"
                ],
                "summary": {"joined": "240 (100.0%)"},
                "title": "Joined, unmatched and dead-lettered records per 6 hours (share of all)",
            },
            "human_agreement": {
                "flags": [],
                "notes": ["only 9 comparisons judged by two or more annotators: too few to rely on"],
                "summary": {"comparisons": 9, "krippendorff_alpha": None, "unanimous": 1.0},
                "title": "Agreement between human annotators on the same comparisons",
            },
            "join_latency": {
                "flags": [],
                "notes": [],
                "summary": {"n": 240, "p50_s": 1691.0075, "p90_s": 3229.4254, "p99_s": 3524.20028},
                "title": "Join latency: event time from inference to its feedback (seconds)",
            },
            "leaderboard": {
                "flags": [],
                "notes": [
                    "acme-chat@2026.10 and acme-mini@1.4 overlap in "
                    "their intervals: the order of the top two is not "
                    "settled"
                ],
                "summary": {"bootstrap_rounds": 200, "models": 4, "pairs": 240, "top": "acme-chat@2026.10"},
                "title": "Leaderboard: Bradley-Terry strength (Elo scale, 95% bootstrap interval)",
            },
            "length_bias": {
                "flags": [],
                "notes": [],
                "summary": {
                    "model:acme-chat@2026.10": 0.5244,
                    "model:acme-chat@2026.11": 0.4658,
                    "model:acme-mini@1.4": 0.5405,
                    "source:HUMAN_ANNOTATOR": 0.5109,
                },
                "title": "Share of pairs whose chosen answer is the longer one",
            },
            "length_bias_over_time": {
                "flags": [],
                "notes": [],
                "summary": {"HUMAN_ANNOTATOR": "+0.00802 log-odds per 6 hours, p = 0.86"},
                "title": "Longer-chosen share per 6 hours, by source (drift tested)",
            },
            "position_bias": {
                "flags": [],
                "notes": [],
                "summary": {},
                "title": "Win rate by candidate position, by source (pairwise, one model)",
            },
            "rm_agreement": {
                "flags": [],
                "notes": ["no comparison was judged by both a reward model and a person"],
                "summary": {},
                "title": "Reward model against people on the same comparisons",
            },
            "win_matrix": {
                "flags": [],
                "notes": [],
                "summary": {},
                "title": "Win rate of the row model against the column model",
            },
        },
        "meta": {
            "from": "2026-11-02 00:29 UTC",
            "pairs": 240,
            "selection": {"sources": ["HUMAN_ANNOTATOR"], "start": "2026-11-02"},
            "to": "2026-11-04 11:50 UTC",
        },
    },
}
FIGURES: dict[str, str] = {
    "ab.json": "44fb9e661068e23dd2746cda504ac97cdfb6576734553f954495da54eb7ba7c5",
    "coverage.json": "b195a501c269d91f4226c2618d4b9dd3fba62fff99fc99d099eabec26610da21",
    "health.json": "8fc02334d50b478e5b62e8bef7820fbab5f5c40da5226e6388bdcb83ea56ccea",
    "human_agreement.json": "4a56c3b8d86e4f3a47a883fa9ad5a4c9b15951ce4df4dbdb3171b7b0882f70da",
    "join_latency.json": "eb2b5565adf8b325b0c2019c23b8a90911a610bf58d45712befaaf1a1a317e23",
    "leaderboard.json": "7e9036f63eb2b41c414520571ab517916c61a4a5e81000b83e958861a0174287",
    "length_bias.json": "34c02602bf1e26c7ec85a9f2ac1e5205379d0b0d19cc1e08487c7c05ca48a91b",
    "length_bias_over_time.json": "939c2501ac15e02f91ebb243a9f7295312000a7781e52e072d7fc0fe3853082e",
    "position_bias.json": "37517e5f3dc66819f61f5a7bb8ace1921282415f10551d2defa5c3eb0985b570",
    "rm_agreement.json": "09c7285ce9f829facba51348e19208ddbccb2ce849df546e8790998ea7ea2f61",
    "win_matrix.json": "6533f0d55aaec64780cbfd41d31e306fa5310fe7f3faa6891f13898d115a369a",
}

#: the figures whose data changed on purpose: human_agreement has a row per panel of verdicts with its number
#: of comparisons (was a row per comparison, a list as long as the log)
CHANGED = {"human_agreement.json"}
#: figures made since the golden ones (the Cohorts section, tested in tests/unit/test_report_cohorts.py)
NEW = {"subject_length_preference.json", "subject_model_agreement.json"}


def _summary(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    del summary["meta"]["generated_at"], summary["meta"]["log"]
    return summary


def _expected(key: str) -> dict[str, Any]:
    expected = copy.deepcopy(GOLDEN[key])
    expected["figures"]["leaderboard"]["notes"].insert(0, PRIOR)  # new: what the strengths are (the prior)
    return expected


@pytest.mark.parametrize(
    ("key", "selection"),
    [("report", Selection()), ("report-filtered", Selection(sources=("HUMAN_ANNOTATOR",), start="2026-11-02"))],
)
def test_the_streaming_report_gives_the_in_memory_report_s_figures(
    tmp_path: Path, key: str, selection: Selection
) -> None:
    url = adversarial_log(tmp_path / "log")
    grow(tmp_path / "log")
    report(url, tmp_path / "out", selection)
    summary = _summary(tmp_path / "out")
    cohorts = [summary["figures"].pop(k, None) for k in ("subject_length_preference", "subject_model_agreement")]
    assert all(cohorts)  # new since the golden figures (the Cohorts section: tests/unit/test_report_cohorts.py)
    assert summary == _expected(key)
    if key == "report":
        figures = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "out" / "figures").glob("*.json")
        }
        assert set(figures) >= NEW
        assert {k: v for k, v in figures.items() if k not in CHANGED | NEW} == {
            k: v for k, v in FIGURES.items() if k not in CHANGED
        }


def _wide_log(root: Path, pairs: int, per_file: int = 2_000, seed: int = 0) -> int:
    """A log of ``pairs`` arena and single-model pairs with answers of 2-4 kB; the bytes of text it holds."""
    rng = np.random.default_rng(seed)
    schema = arrow_schema(default_store().latest("PreferencePair").raw)
    one = to_table([SAMPLE], schema)
    model_type = schema.field("chosen_model").type
    models = [{"name": "acme", "version": v} for v in ("1.9", "1.10", "2.0")]
    stream = "".join(chr(c) for c in rng.integers(97, 123, 200_000))  # answers are slices of it
    text_bytes = 0
    for first in range(0, pairs, per_file):
        n = min(per_file, pairs - first)
        i = np.arange(first, first + n)
        winner = rng.integers(0, 3, n)
        loser = np.where(rng.random(n) < 0.4, (winner + rng.integers(1, 3, n)) % 3, winner)
        lengths, starts = rng.integers(2_000, 4_000, (2, n)), rng.integers(0, 190_000, (2, n))
        spans = [zip(starts[j].tolist(), lengths[j].tolist(), strict=True) for j in (0, 1)]
        texts = [pa.array([stream[s : s + k] for s, k in span]) for span in spans]
        text_bytes += int(lengths.sum())
        chosen_index = rng.integers(0, 3, n)
        columns = {
            "pair_id": pa.array([f"00000000-0000-4000-8000-{k:012d}" for k in i.tolist()]),
            "feedback_id": pa.array([f"00000000-0000-4000-9000-{k:012d}" for k in i.tolist()]),
            "request_id": pa.array([f"00000000-0000-4000-a000-{k // 3:012d}" for k in i.tolist()]),
            "feedback_kind": pa.array(["PAIRWISE"] * n),
            "chosen_model": pa.array([models[k] for k in winner.tolist()], model_type),
            "rejected_model": pa.array([models[k] for k in loser.tolist()], model_type),
            "chosen_index": pa.array(chosen_index, pa.int32()),
            "rejected_index": pa.array((chosen_index + rng.integers(1, 3, n)) % 3, pa.int32()),
            "chosen": texts[0],
            "rejected": texts[1],
            "feedback_time": pa.array(1_793_491_200_000 + i * 60_000, pa.timestamp("ms", tz="UTC")),
            "join_latency_ms": pa.array(rng.integers(100, 3_600_000, n), pa.int64()),
        }
        table = one.take(pa.array(np.zeros(n, dtype=np.int64)))
        source = table.column("source").combine_chunks()
        kinds = pa.array(np.array(["HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL"])[rng.integers(0, 3, n)])
        judges = pa.array([f"judge-{k}" for k in rng.integers(0, 5, n).tolist()])
        columns["source"] = pa.StructArray.from_arrays(
            [kinds.cast(source.type.field("type").type), judges, source.field("name"), source.field("version")],
            fields=list(source.type),
        )  # fmt: skip
        for name, column in columns.items():
            at = table.schema.get_field_index(name)
            table = table.set_column(at, table.schema.field(at), column.cast(table.schema.field(at).type))
        name = file_name("preflog.pairs.v1", 0, first, first + n - 1)
        Storage(f"file://{root}").put(f"pairs/dt=2026-11-01/{name}", encode(table))
    return text_bytes


def test_a_report_under_a_memory_limit_smaller_than_its_log_gives_the_unlimited_report(tmp_path: Path) -> None:
    from preflog.report.data import load

    text_bytes = _wide_log(tmp_path / "log", 30_000)
    assert text_bytes > 128 * 10**6  # the answers alone are more than the limit
    url = f"file://{tmp_path / 'log'}"
    inputs = load(url, Selection(), memory_limit="128MB")
    try:  # DuckDB works within half the limit, the other half is left to Python
        assert inputs.rows("SELECT current_setting('memory_limit')")[0][0] == "61.0 MiB"
    finally:
        inputs.close()
    report(url, tmp_path / "small", Selection(), rounds=50, memory_limit="128MB")
    report(url, tmp_path / "large", Selection(), rounds=50, memory_limit="8GB")
    small, large = _summary(tmp_path / "small"), _summary(tmp_path / "large")
    assert small == large and small["meta"]["pairs"] == 30_000
    assert small["figures"]["leaderboard"]["summary"]["models"] == 3 and small["figures"]["ab"]["summary"]["n"] > 0
    for figure in (tmp_path / "large" / "figures").glob("*.json"):
        assert (tmp_path / "small" / "figures" / figure.name).read_text() == figure.read_text(), figure.name
