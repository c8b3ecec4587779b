"""The short fault suite: kill -9 of processor and sink, a broker network cut, hostile inputs; nothing lost.

The same code as ``python benchmarks/fault_suite/faults.py`` (whose ``--full`` run is the
long version): expected outcomes come from the generator and the hostile-input
list, never from the Joiner, and the audit log's Parquet files are read back
directly. It starts its own moto, Tansu (behind a proxy it cuts) and services.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

FAULT_SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "fault_suite"


def _faults() -> Any:
    if str(FAULT_SUITE) not in sys.path:
        sys.path.insert(0, str(FAULT_SUITE))
    import faults

    return faults


@pytest.mark.timeout(400)
def test_short_fault_suite_loses_nothing_and_accounts_for_every_bad_input(tmp_path: Path) -> None:
    faults = _faults()
    results = faults.run_plan(copy.deepcopy(faults.SHORT), tmp_path / "faults")
    report = faults.table(results)
    print(report)
    assert sum(results["faults"].values()) >= 8, results["faults"]
    pairs, signals, bad = results["pairs"], results["signals"], results["bad_inputs"]
    assert not results["never_delivered"], results["never_delivered"]
    assert pairs["lost"] == 0, report
    assert pairs["duplicated"] == 0, report
    assert pairs["unexpected"] == 0, report
    assert (signals["lost"], signals["duplicated"], signals["unexpected"]) == (0, 0, 0), report
    assert bad["accounted"] == bad["expected"], report
    assert all(u["missing"] == 0 and u["duplicated"] == 0 for u in results["unmatched"].values()), report
    # exactly one dead letter per bad record, also after a processor restart re-emits it
    assert results["dead_letters"]["duplicated_by_offset"] == 0, report
    assert results["reconcile"]["exit_code"] == 0, report  # every record has one outcome, nothing pending


@pytest.mark.heavy
@pytest.mark.timeout(400)
def test_short_fault_suite_with_privacy_loses_nothing_and_the_erasure_reaches_only_its_users(tmp_path: Path) -> None:
    """The same suite with the traffic sealed by the SDK (keys on a keys topic) and two users erased midway."""
    faults = _faults()
    plan = copy.deepcopy(faults.SHORT)
    plan.privacy = True
    results = faults.run_plan(plan, tmp_path / "faults")
    report = faults.table(results)
    print(report)
    pairs, privacy = results["pairs"], results["privacy"]
    assert (pairs["lost"], pairs["duplicated"], pairs["unexpected"]) == (0, 0, 0), report
    assert results["reconcile"]["exit_code"] == 0, report
    assert results["events_sent"]["sealed by the SDK (privacy)"] > 200, report
    assert privacy["erasure"]["exit_code"] == 0 and privacy["keys_erased"] >= 1, report
    # their rows sealed before the erasure read erased; no other row does, and every other row opens as sent
    assert privacy["pairs"].get("sealed before the erasure began", 0) > 0, report
    assert privacy["ok"], report
    assert results["ok"], report  # everything the plain run checks, too


@pytest.mark.heavy
@pytest.mark.timeout(400)
def test_short_fault_suite_through_the_api_loses_no_acknowledged_event_and_doubles_nothing(tmp_path: Path) -> None:
    """The short fault suite with the HTTP ingestion API in front: what ``preflog serve`` acknowledged is never lost.

    The same code as ``python benchmarks/fault_suite/faults.py --api``: ``preflog serve`` runs as
    one more service behind the broker's proxy, client threads post the generated
    traffic to it in small batches and send the same events again after a 429, a
    503 or a connection error; the broker is cut (refused, then blackholed longer
    than the API's ack timeout) and the API killed -9 while they send, beside the
    usual kill -9 of the processor and the sink. Expected pairs come from the
    generator's decisions restricted to the ids the API acknowledged, and the audit
    log's Parquet files are read back directly.
    """
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
