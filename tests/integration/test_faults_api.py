"""The short fault suite with the HTTP ingestion API in front: what ``preflog serve`` acknowledged is never lost.

The same code as ``python benchmarks/faults.py --api``: ``preflog serve`` runs as
one more service behind the broker's proxy, client threads post the generated
traffic to it in small batches and send the same events again after a 429, a
503 or a connection error; the broker is cut (refused, then blackholed longer
than the API's ack timeout) and the API killed -9 while they send, beside the
usual kill -9 of the processor and the sink. Expected pairs come from the
generator's decisions restricted to the ids the API acknowledged, and the audit
log's Parquet files are read back directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _faults() -> Any:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import faults

    return faults


@pytest.mark.heavy
@pytest.mark.timeout(400)
def test_short_fault_suite_through_the_api_loses_no_acknowledged_event_and_doubles_nothing(tmp_path: Path) -> None:
    faults = _faults()
    results = faults.run_plan(faults.with_api(faults.SHORT), tmp_path / "faults")
    report = faults.table(results)
    print(report)
    api, pairs = results["api"], results["pairs"]
    # the faults came while the clients sent: both broker cuts and a kill -9 of the API
    assert any(k.startswith("broker network cut, refuse") for k in results["faults"]), results["faults"]
    assert any(k.startswith("broker network cut, blackhole") for k in results["faults"]), results["faults"]
    assert results["faults"]["kill -9 api (clients sending) + restart"] == 1, results["faults"]
    # ... and the clients met them: answers other than 202, and the same events sent again
    assert api["answers"].get("503", 0) + api["answers"].get("connection error", 0) > 0, report
    assert api["retries"] > 0, report
    assert api["events_acknowledged"] > 250, report
    acknowledged = api["pairs_of_acknowledged"]
    assert acknowledged["expected"] > 200, report
    # every pair of an acknowledged inference and feedback is in the log exactly once
    assert acknowledged["found_once"] == acknowledged["expected"], report
    assert (acknowledged["missing"], acknowledged["more_than_once"]) == (0, 0), report
    assert api["pairs_of_unacknowledged"]["more_than_once"] == 0, report
    assert not api["findings"], report  # no answer contradicting the request, no status a client cannot handle
    assert (pairs["lost"], pairs["duplicated"], pairs["unexpected"]) == (0, 0, 0), report
    assert results["reconcile"]["exit_code"] == 0, report  # every record one outcome, duplicates included
    assert results["ok"], report  # everything the plain run checks, too (hostile inputs sent raw beside)
