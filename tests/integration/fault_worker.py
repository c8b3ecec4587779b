"""``preflog process`` with a fault injected from the environment (tests only).

``PREFLOG_TEST_FAIL_AT=deliver|state|state-mid|gaps`` with ``PREFLOG_TEST_TRIGGER=<path>``:
once the file exists, the next batch fails at that step of the batch protocol:

* ``deliver``: the second output send raises (one output of the batch went out);
* ``state``: the first changelog write raises (after the outputs were delivered);
* ``state-mid``: the third changelog write raises (part of the state is written);
* ``gaps``: marking re-read ranges done raises.

``PREFLOG_TEST_KILL_CONSUMER=<path>``: once the file exists, Faust's Kafka
consumer thread crashes while the process lives on (the health tests).

``PREFLOG_TEST_DROP=<topic>:<first offset>``: records of ``topic`` from that
offset on (every partition) never reach the agent while the fetch position
moves past them, as faust-streaming 0.15 + aiokafka 0.14 did after a restart
(see processors/faust_compat.py).

The faults patch Faust's producer (every output and changelog record goes
through ``Producer.send``), aiokafka's consumer, and, for ``gaps``, step 3 of
preflog's checkpoint.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _armed() -> bool:
    trigger = os.environ.get("PREFLOG_TEST_TRIGGER")
    return bool(trigger) and os.path.exists(str(trigger))


def _inject_failure(step: str) -> None:
    from faust.transport.drivers.aiokafka import Producer

    outputs = {os.environ.get(f"PREFLOG_TOPICS__{role}") for role in ("PAIRS", "UNPAIRED", "UNMATCHED", "DEAD_LETTER")}
    send = Producer.send
    calls = {"output": 0, "changelog": 0}
    fired = [False]

    async def failing_send(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        if _armed() and not fired[0]:
            kind = "output" if topic in outputs else "changelog" if topic.endswith("-changelog") else None
            if kind is not None:
                calls[kind] += 1
                if (step, kind, calls[kind]) in {
                    ("deliver", "output", 2),
                    ("state", "changelog", 1),
                    ("state-mid", "changelog", 3),
                }:
                    fired[0] = True
                    raise RuntimeError(f"injected failure: {step} ({kind} send {calls[kind]} of the batch)")
        return await send(self, topic, *args, **kwargs)

    Producer.send = failing_send  # type: ignore[method-assign]

    if step == "gaps":
        from preflog.processors.checkpoint import Checkpoint

        mark = Checkpoint.mark_done

        async def failing_mark(self: Any) -> None:
            if _armed() and not fired[0] and calls["output"] > 0:  # a batch that delivered and wrote its state
                fired[0] = True
                raise RuntimeError("injected failure: gaps (after the outputs and state of the batch)")
            await mark(self)

        Checkpoint.mark_done = failing_mark  # type: ignore[method-assign]


def _inject_drop(spec: str) -> None:
    from aiokafka.consumer.fetcher import PartitionRecords

    topic, first = spec.rsplit(":", 1)
    unpack = PartitionRecords._unpack_records

    def dropping(self: Any) -> Any:
        for record in unpack(self):
            if record.topic == topic and record.offset >= int(first):
                continue  # the fetch position has moved past it; the agent never sees it
            yield record

    PartitionRecords._unpack_records = dropping


def _inject_consumer_death(trigger: str) -> None:
    """Once ``trigger`` exists, crash Faust's Kafka consumer thread while the worker process lives on."""
    import asyncio
    import threading
    import time

    from preflog.processors import app as app_module

    create = app_module.create_app

    def capturing(*args: Any, **kwargs: Any) -> Any:
        app = create(*args, **kwargs)

        def wait_then_crash() -> None:
            while not os.path.exists(trigger):
                time.sleep(0.1)
            thread = app.consumer._thread  # type: ignore[attr-defined]
            asyncio.run_coroutine_threadsafe(thread.crash(RuntimeError("injected: consumer died")), app.loop)

        threading.Thread(target=wait_then_crash, daemon=True).start()
        return app

    app_module.create_app = capturing


def main() -> None:
    kill = os.environ.get("PREFLOG_TEST_KILL_CONSUMER")
    if kill:
        _inject_consumer_death(kill)
    step = os.environ.get("PREFLOG_TEST_FAIL_AT")
    if step:
        _inject_failure(step)
    drop = os.environ.get("PREFLOG_TEST_DROP")
    if drop:
        _inject_drop(drop)
    from preflog.cli import main as cli

    sys.argv = ["preflog", "process", "--loglevel", "info"]
    cli()


if __name__ == "__main__":
    main()
