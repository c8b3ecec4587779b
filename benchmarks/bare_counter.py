"""A Faust agent that only counts events: the baseline the processor is compared with.

Run by processor_throughput.py as: python bare_counter.py BOOTSTRAP TOPIC,TOPIC EXPECTED
Prints "first=<unix s> last=<unix s> count=<n>" once EXPECTED events were seen.
"""

from __future__ import annotations

import os
import sys
import time

import faust

bootstrap, topics, expected = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
app = faust.App(
    f"bare-counter-{os.getpid()}",
    broker=f"kafka://{bootstrap}",
    web_enabled=False,
    store="memory://",
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    consumer_auto_offset_reset="earliest",
)
channel = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
seen = {"n": 0, "first": 0.0}


@app.agent(channel)
async def count(stream: faust.StreamT) -> None:
    async for _event in stream.events():
        if seen["n"] == 0:
            seen["first"] = time.time()
        seen["n"] += 1
        if seen["n"] == expected:
            print(f"first={seen['first']:.3f} last={time.time():.3f} count={seen['n']}", flush=True)
            os._exit(0)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
