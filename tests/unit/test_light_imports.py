"""``import preflog`` and ``preflog.read_pairs`` load pyarrow only.

A notebook or a training job reading the audit log never pays for Kafka, Avro, pydantic or Prometheus.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.test_read import _log

HEAVY = ("fastavro", "confluent_kafka", "pydantic", "pydantic_settings", "prometheus_client", "faust", "aiokafka")
PROBE = """
import json, sys
import preflog
after_import = sorted(sys.modules)
read = preflog.read_pairs
after_attribute = sorted(sys.modules)
rows = read(sys.argv[1]).num_rows if len(sys.argv) > 1 else None
print(json.dumps({"import": after_import, "attribute": after_attribute, "read": sorted(sys.modules), "rows": rows}))
"""


def _modules(*args: str) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def _top(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_preflog_and_read_pairs_load_pyarrow_and_nothing_heavy() -> None:
    seen = _modules()
    assert "pyarrow" not in _top(seen["import"])  # import preflog alone loads no third-party package
    assert "pyarrow" in _top(seen["attribute"])
    assert not _top(seen["attribute"]) & {*HEAVY, "fsspec", "s3fs"}


def test_reading_a_local_log_adds_fsspec_but_nothing_heavy(tmp_path: Path) -> None:
    _log(tmp_path, files=2, rows=5)
    seen = _modules(f"file://{tmp_path}")
    assert seen["rows"] == 10
    assert not _top(seen["read"]) & {*HEAVY, "s3fs"}
