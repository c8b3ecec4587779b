"""A Faust agent that only counts events: the baseline the processor is compared with.

Run by processor_throughput.py as: python bare_counter.py BOOTSTRAP TOPIC,TOPIC EXPECTED OUT_FILE
Writes "first=<unix s> last=<unix s> count=<n>" to OUT_FILE once EXPECTED events were seen
(Faust redirects stdout to its log, so the result goes to a file). It takes the
events in the processor's batches (``take_events(500, within=0.01)``, the
defaults of processor.batch_max and batch_wait_s) and only counts them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import faust

bootstrap, topics, expected, out_file = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4]
app = faust.App(
    f"bare-counter-{os.getpid()}",
    broker=f"kafka://{bootstrap}",
    web_enabled=False,
    store="memory://",
    datadir=tempfile.mkdtemp(prefix="bare-counter-"),
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    consumer_auto_offset_reset="earliest",
)
channel = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
seen = {"n": 0, "first": 0.0}


@app.agent(channel)
async def count(stream: faust.StreamT) -> None:
    async for events in stream.take_events(500, within=0.01):  # type: ignore[attr-defined]
        if seen["n"] == 0:
            seen["first"] = time.time()
        seen["n"] += len(events)
        if seen["n"] >= expected:
            with open(out_file, "w") as f:
                f.write(f"first={seen['first']:.3f} last={time.time():.3f} count={seen['n']}")
            os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
