"""A small audit log whose report figures are known by hand.

An A/B between two versions, a length bias, a reward model against people, a panel of annotators.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.samples import all_samples

from .dataset_helpers import SAMPLE, write_table

OLD = {"name": "acme", "version": "1", "checkpoint_hash": None}
NEW = {"name": "acme", "version": "2", "checkpoint_hash": None}


class Log:
    """Pairs added one judgement at a time; ``write`` puts them in one file."""

    def __init__(self) -> None:
        self.pairs: list[dict[str, Any]] = []

    def pair(self, request: int, chosen: tuple[int, dict[str, Any] | None, str],
             rejected: tuple[int, dict[str, Any] | None, str],
             source: str = "HUMAN_ANNOTATOR", source_id: str | None = "a-1", version: str | None = None,
             minute: int = 0) -> None:  # fmt: skip
        """Candidate ``chosen`` (index, model, text) preferred over ``rejected`` on request ``request``."""
        n = len(self.pairs)
        when = SAMPLE["feedback_time"] + timedelta(minutes=minute)
        self.pairs.append(
            {
                **SAMPLE,
                "pair_id": f"00000000-0000-4000-8000-{n:012d}",
                "feedback_id": f"00000000-0000-4000-9000-{n:012d}",
                "request_id": f"00000000-0000-4000-a000-{request:012d}",
                "feedback_kind": "SCORES" if source == "REWARD_MODEL" else "PAIRWISE",
                "chosen_index": chosen[0], "rejected_index": rejected[0],
                "chosen_model": chosen[1], "rejected_model": rejected[1],
                "chosen": chosen[2], "rejected": rejected[2],
                "source": {"type": source, "id": source_id, "name": None, "version": version},
                "feedback_time": when,
                "join_latency_ms": 1000 * (n % 10 + 1),
            }
        )  # fmt: skip

    def write(self, root: Path) -> str:
        samples = all_samples()
        unmatched = [  # two inferences that never got feedback, a day apart
            {**samples["UnmatchedRecord"], "unmatched_id": f"u-{i}", "request_id": f"00000000-0000-4000-b000-{i:012d}",
             "event_time": SAMPLE["feedback_time"] + timedelta(hours=24 * i)}
            for i in range(2)
        ]  # fmt: skip
        write_table(root, "unmatched", unmatched)
        write_table(root, "dead_letter", [{**samples["DeadLetter"], "dead_letter_id": "d-0"}])
        return write_table(root, "pairs", self.pairs)


def known_log(root: Path) -> str:
    """The log; the figures its report must give are in the test that reads it."""
    log = Log()
    # A/B by annotators: NEW wins 21 of 30; the chosen answer is the longer one in 24 of them
    for r in range(30):
        new, old = (0, NEW, "n" * (20 if r < 24 else 5)), (1, OLD, "o" * 10)
        log.pair(r, new if r < 21 else old, old if r < 21 else new, minute=r)
    # END_USER: 4 comparisons, NEW wins 3: too few to tell
    for r in range(30, 34):
        new, old = (0, NEW, "new answer"), (1, OLD, "old")
        log.pair(r, new if r < 33 else old, old if r < 33 else new, source="END_USER", source_id=f"u-{r}")
    # the reward model on the first ten requests: agrees with the annotator on 8
    for r in range(10):
        human = log.pairs[r]
        agree = r < 8
        chosen = (human["chosen_index"], human["chosen_model"], human["chosen"])
        rejected = (human["rejected_index"], human["rejected_model"], human["rejected"])
        log.pair(r, chosen if agree else rejected, rejected if agree else chosen, source="REWARD_MODEL",
                 source_id="rm", version="7")  # fmt: skip
    # a second annotator on requests 0..2: agrees on 0 and 1, not on 2
    for r in range(3):
        human = log.pairs[r]
        chosen = (human["chosen_index"], human["chosen_model"], human["chosen"])
        rejected = (human["rejected_index"], human["rejected_model"], human["rejected"])
        log.pair(r, chosen if r < 2 else rejected, rejected if r < 2 else chosen, source_id="a-2")
    # two annotators without an id on request 3, both with a-1 (NEW): two raters, not one
    for _ in range(2):
        log.pair(3, (0, NEW, "n" * 20), (1, OLD, "o" * 10), source_id=None)
    # a second reward model, rm-b 1, on requests 0..4: always against a-1
    for r in range(5):
        human = log.pairs[r]
        log.pair(r, (human["rejected_index"], human["rejected_model"], human["rejected"]),
                 (human["chosen_index"], human["chosen_model"], human["chosen"]), source="REWARD_MODEL",
                 source_id="rm-b", version="1")  # fmt: skip
    # one ranking of three answers of one model (the request's): one judgement, three pairs, equal lengths
    for i, j in ((0, 1), (0, 2), (1, 2)):
        log.pair(99, (i, None, f"answer {i}"), (j, None, f"answer {j}"), source_id="a-3")
    first = log.pairs[-3]
    for p in log.pairs[-3:]:  # one judgement: one id, one time, one latency
        p.update(feedback_kind="RANKING", feedback_id=first["feedback_id"], feedback_time=first["feedback_time"],
                 join_latency_ms=first["join_latency_ms"])  # fmt: skip
    return log.write(root)
