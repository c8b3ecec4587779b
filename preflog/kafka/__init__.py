"""preflog's Kafka layer: client configurations, topics, group offsets and the range reader.

Every librdkafka client preflog creates outside Faust starts from one of the
builders in :mod:`.config`; topic creation lives in :mod:`.topics`, consumer
group offsets and offset specs in :mod:`.offsets`, and the one way of reading
a partition "from offset A up to the end a fetch reports" in :mod:`.reader`.
This package imports no Kafka client itself; its modules do.
"""

from __future__ import annotations

__all__: list[str] = []
