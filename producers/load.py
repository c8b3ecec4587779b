"""Validate and send a stream of events, keeping score of what was sent and what was refused."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from preflog.errors import PreflogError
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError

from .client import PreflogProducer
from .files import Line
from .progress import Progress, event_id

__all__ = ["ProduceReport", "produce_lines"]


@dataclass
class ProduceReport:
    """What ``produce_lines`` did."""

    sent: int = 0
    delivered: int = 0
    skipped: int = 0  # already sent by an earlier run (progress file)
    valid: int = 0  # lines that passed validation (with dry_run, nothing is sent)
    interrupted: bool = False
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def by_reason(self) -> Counter[str]:
        """Problems counted by the field each names."""
        return Counter(p.split(":", 1)[0] for _, problems in self.rejected for p in problems)

    def _done(self, future: object) -> None:
        from concurrent.futures import Future

        assert isinstance(future, Future)
        with self._lock:
            if future.exception() is None:
                self.delivered += 1
            else:
                self.failed.append(str(future.exception()))


def produce_lines(
    producer: PreflogProducer,
    lines: Iterable[Line],
    dry_run: bool = False,
    on_line: Callable[[Line], None] | None = None,
    progress: Progress | None = None,
    rate: float = 0.0,
    stop: threading.Event | None = None,
) -> ProduceReport:
    """Send each readable, valid line; refuse the others with their reason. Flushes at the end.

    ``progress`` skips events an earlier run already sent and records the ones this run
    sends; ``rate`` caps events per second; ``stop`` ends the run early (still flushed).
    """
    report = ProduceReport()
    started = time.monotonic()
    for line in lines:
        if stop is not None and stop.is_set():
            report.interrupted = True
            break
        if on_line:
            on_line(line)
        eid = event_id(line.event_type, line.data) if line.data is not None else None
        if progress is not None and eid in progress.done:
            report.skipped += 1
            if line.event_type == "inference":  # sent by an earlier run: its feedback is still checked against it
                _remember(producer, line.data)
            continue
        if rate > 0:
            ahead = started + report.sent / rate - time.monotonic()
            if ahead > 0 and stop is not None and stop.wait(ahead):
                report.interrupted = True
                break
            if ahead > 0 and stop is None:
                time.sleep(ahead)
        if line.data is None:
            report.rejected.append((line.number, [line.error or "unreadable"]))
            continue
        try:
            if dry_run:
                if line.event_type == "feedback":
                    rid = line.data.get("request_id")
                    count = producer.candidate_count(rid) if isinstance(rid, str) else None
                    feedback_record(line.data, candidate_count=count)
                else:
                    producer.remember_inference(inference_record(line.data))
                report.valid += 1
                continue
            log = producer.log_feedback if line.event_type == "feedback" else producer.log_inference
            future: object = log(line.data)
        except ValidationError as exc:
            report.rejected.append((line.number, exc.problems))
            continue
        except PreflogError as exc:
            report.rejected.append((line.number, [f"{type(exc).__name__}: {exc}"]))
            continue
        report.sent += 1
        future.add_done_callback(report._done)  # type: ignore[attr-defined]
        if progress is not None and eid is not None:
            future.add_done_callback(_record(progress, eid))  # type: ignore[attr-defined]
    producer.flush()
    return report


def _record(progress: Progress, eid: str) -> Callable[[Any], None]:
    def done(future: Any) -> None:
        if future.exception() is None:
            progress.confirmed(eid)

    return done


def _remember(producer: PreflogProducer, data: Any) -> None:
    """Remember a skipped inference's candidates; one that no longer validates is simply not remembered."""
    with contextlib.suppress(ValidationError):
        producer.remember_inference(inference_record(data))
