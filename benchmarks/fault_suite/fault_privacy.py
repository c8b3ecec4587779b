"""The fault suite with privacy on (``--privacy``): traffic sealed by the SDK, an erasure midway, the log opened.

:func:`setup` makes a master key and a pseudonym secret with ``preflog privacy
new-key`` and creates the keys topic on the run's broker (compacted, as
``preflog topics create`` does with privacy on): the data keys live on the
broker that the suite cuts, and that ``--full`` kills and restarts with its log
in S3, so the keys must survive what the events survive. The generated traffic
then goes through ``PreflogProducer.from_settings`` (``fault_traffic.py``): ids
pseudonymised, personal fields sealed. Hostile inputs, invalid generated events
and the closing movers are sent raw, unsealed, as in the plain run; the
processor and the sink run as always, without any key.

:func:`erase_midway` runs ``preflog erase --subject`` for generated users
halfway through the traffic (users with events on both sides of that moment
when there are any), while the faults go on. :func:`check` reads the audit
log with the keyring (``read_pairs(url, keys=Keyring.load(settings))``) and
compares it with the generator's own records:

* a row reads as erased exactly when the data key of its inference was erased,
  and only rows of the erased users do: every one of their pairs and signals
  whose inference was sealed before the erasure began reads erased, counted
  against the generator's ground truth of which pairs are theirs; events of
  theirs sealed while it ran, or after it ended but before the producer's key
  watch saw it, read as erased too (sealed with the erased key), later ones
  open as sent (a fresh key);
* every other row of the generated traffic opens to what was sent: prompt,
  prompt messages, chosen and rejected (or the completion), rationale, both
  metadata maps; its user id is the pseudonym, never the raw id;
* rows of raw inputs are not sealed and never read as erased.

Whether anything was lost or duplicated, and ``reconcile --final``, are the
plain run's checks (``fault_checks.py``), unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fault_plan import log

from preflog.producers.generator import GeneratedEvent, expected_outcomes
from preflog.settings import KafkaSettings, PrivacySettings, Settings

if TYPE_CHECKING:
    from fault_run import Run
    from fault_traffic import Sent

__all__ = ["PrivacyRun", "check", "erase_midway", "setup", "summary_rows"]

OTHER = "other users' rows"
BEFORE, DURING, AFTER = "sealed before the erasure began", "sealed while it ran", "sealed after it ended"
OTHER_OK = "other users' rows readable and equal"


@dataclass
class PrivacyRun:
    """The privacy side of a run: its settings, the variables a preflog command needs, the erasure."""

    settings: Settings
    env: dict[str, str]  # PREFLOG_PRIVACY__* and PREFLOG_DATA_DIR
    keys_topic: str
    secret: bytes
    users: list[str] = field(default_factory=list)  # the raw ids of the generated users erased midway
    erasure: dict[str, Any] = field(default_factory=dict)  # what the erasure did (times are monotonic)


def setup(run: Run) -> PrivacyRun:
    """Make the keys (``preflog privacy new-key``) and the keys topic; the settings the SDK and readers use."""
    from preflog.kafka.topics import ensure_topics
    from preflog.privacy.keys import load_secret
    from preflog.privacy.store import TOPIC_CONFIG

    folder = run.dir / "privacy"
    folder.mkdir(parents=True, exist_ok=True)
    master, secret = folder / "master.key", folder / "pseudonym.secret"
    made = subprocess.run(
        [sys.executable, "-m", "preflog", "privacy", "new-key", str(master), "--secret", str(secret)],
        env=_env(run),
        cwd=run.code_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if made.returncode != 0:
        raise RuntimeError(f"preflog privacy new-key failed: {made.stdout[-500:]} {made.stderr[-1500:]}")
    keys_topic = f"{PrivacySettings().keys_topic}.{run.suffix}"
    ensure_topics(run.kafka_config, [keys_topic], 1, config=TOPIC_CONFIG)
    privacy = PrivacySettings(enabled=True, master_key_file=master, pseudonym_secret_file=secret, keys_topic=keys_topic)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=run.bootstrap, extra={"log_level": "0"}),
        topics=run.topics,
        privacy=privacy,
        data_dir=run.dir / "data",
    )
    env = {
        "PREFLOG_PRIVACY__ENABLED": "true",
        "PREFLOG_PRIVACY__MASTER_KEY_FILE": str(master),
        "PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE": str(secret),
        "PREFLOG_PRIVACY__KEYS_TOPIC": keys_topic,
        "PREFLOG_DATA_DIR": str(run.dir / "data"),
    }
    log(f"privacy on: keys topic {keys_topic}, keys in {folder}")
    return PrivacyRun(settings, env, keys_topic, load_secret(settings))


def _env(run: Run) -> dict[str, str]:
    """The environment of a preflog command run from the run's copy of the code, without PREFLOG_ variables."""
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("PREFLOG_")}, **run.code_env}


# -- the erasure -------------------------------------------------------------------------------


def _generated(run: Run) -> dict[str, Sent]:
    """The records of generated events sent so far, by label (``gen:<index>``)."""
    assert run.sender is not None
    return {s.label: s for s in list(run.sender.sent) if s.label.startswith("gen:")}


def pick_users(run: Run, events: list[GeneratedEvent], elapsed: float) -> list[str]:
    """The generated users to erase: with pairs or signals already sent, preferably with events still to come.

    Args:
        run: The run (what was sent so far).
        events: The generated traffic.
        elapsed: Seconds of traffic sent so far.

    Returns:
        ``run.plan.erase_users`` raw user ids.
    """
    truth = expected_outcomes(events)
    request_of = {e.record["feedback_id"]: e.key for e in events if e.event_type == "feedback" and e.record}
    user_of = {e.key: e.record["context"]["user_id"] for e in events if e.event_type == "inference" and e.record}
    rows: Counter[str] = Counter()
    for fid, *_ in [*truth.pairs, *truth.signals]:
        rid = request_of.get(fid)
        if rid in user_of:
            rows[user_of[rid]] += 1
    sent = _generated(run)
    before: set[str] = set()
    later: set[str] = set()
    for i, e in enumerate(events):
        if e.event_type != "inference" or e.record is None or not rows[user_of[e.key]]:
            continue
        item = sent.get(f"gen:{i}")
        if item is not None and item.sealed_at is not None:
            before.add(user_of[e.key])
        elif e.at > elapsed + 3:
            later.add(user_of[e.key])
    ranked = sorted(before, key=lambda u: (u in later, rows[u], u), reverse=True)
    return ranked[: run.plan.erase_users]


def erase_midway(run: Run, events: list[GeneratedEvent], wall0: float) -> None:
    """Halfway through the traffic, ``preflog erase --subject`` for generated users; the result in ``run.privacy``.

    Args:
        run: The run (privacy on).
        events: The generated traffic.
        wall0: When the traffic started (``time.monotonic()``).
    """
    p = run.privacy
    assert p is not None and run.moto is not None and run.sink is not None
    try:
        midway = events[len(events) // 2].at
        time.sleep(max(0.0, wall0 + midway - time.monotonic()))
        elapsed = time.monotonic() - wall0
        p.users = pick_users(run, events, elapsed)
        log(f"fault: erase {len(p.users)} generated user(s) (preflog erase), {elapsed:.0f} s into the traffic")
        env = {
            **run.sink.env,  # the broker, the topics, the audit log's url and credentials, the code's copy
            **p.env,
            "PREFLOG_SINK__S3_ENDPOINT_URL": run.moto.endpoint,  # moto itself: the sink's proxy may be cut
        }
        command = [sys.executable, "-m", "preflog", "erase"]
        for user in p.users:
            command += ["--subject", user]
        started = time.monotonic()
        done = subprocess.run(command, env=env, cwd=run.code_dir, capture_output=True, text=True, timeout=300)
        ended = time.monotonic()
        receipts = sorted((Path(p.settings.data_dir) / "privacy" / "erasures").glob("*.json"))
        p.erasure = {
            "exit_code": done.returncode,
            "traffic_s": round(elapsed, 1),
            "took_s": round(ended - started, 1),
            "started": started,
            "ended": ended,
            "receipt": json.loads(receipts[-1].read_text()) if receipts else None,
            "output": (done.stdout + done.stderr)[-3000:],
        }
        run.faults[f"erasure of {len(p.users)} generated users (preflog erase), midway"] += 1
        log(f"erasure done in {ended - started:.1f} s (exit {done.returncode})")
    except Exception as exc:  # the checks report it
        p.erasure.setdefault("error", f"{type(exc).__name__}: {exc}")
        log(f"erasure failed: {exc}")


# -- the checks --------------------------------------------------------------------------------


@dataclass
class Origin:
    """A generated event as sent: its record, its data key (None: sent raw), when the SDK sealed it."""

    event: GeneratedEvent
    key_id: str | None
    subject: str | None
    sealed_at: float | None


def _origins(run: Run, events: list[GeneratedEvent]) -> tuple[dict[tuple[str, int, int], Origin], list[str]]:
    """Each delivered offset of a generated event and what was sent there (the key read from the bytes sent).

    Returns:
        The origins by offset, and the labels of records the SDK sent with a personal text in the clear.
    """
    from fault_traffic import CODEC

    from preflog.privacy.fields import KEY, SUBJECT

    out: dict[tuple[str, int, int], Origin] = {}
    clear: list[str] = []
    for label, s in _generated(run).items():
        e = events[int(label.split(":", 1)[1])]
        key_id = subject = None
        if s.sealed_at is not None and s.value is not None:
            record_type = "InferenceEvent" if e.event_type == "inference" else "FeedbackEvent"
            metadata = CODEC.decode(s.value, record_type).get("metadata") or {}
            key_id, subject = metadata.get(KEY), metadata.get(SUBJECT)
            if key_id is None or any(text.encode() in s.value for text in _personal(e)):
                clear.append(label)
        for offset in s.offsets:
            out[offset] = Origin(e, key_id, subject, s.sealed_at)
    return out, clear


def _personal(e: GeneratedEvent) -> list[str]:
    """The personal texts of a generated event (none of them may be in the clear in what the SDK sent)."""
    r = e.record or {}
    texts = [r.get("prompt"), r.get("rationale"), *(r.get("metadata") or {}).values()]
    texts += [m["content"] for m in r.get("prompt_messages") or []]
    texts += [c["text"] for c in r.get("candidates") or []]
    texts += [(r.get("context") or {}).get(name) for name in ("user_id", "session_id")]
    source = r.get("source") or {}
    if source.get("type") in ("HUMAN_ANNOTATOR", "END_USER"):
        texts.append(source.get("id"))
    return [t for t in texts if isinstance(t, str) and len(t) >= 3]


def _where(offset: dict[str, Any] | None) -> tuple[str, int, int] | None:
    return None if offset is None else (offset["topic"], offset["partition"], offset["offset"])


def _user_meta(pairs: Any) -> dict[str, Any]:
    """A metadata map read back (a list of key/value tuples), without preflog's own keys."""
    return {k: v for k, v in (pairs or []) if not k.startswith("preflog.")}


def _compare(
    row: dict[str, Any], table: str, inf: Origin, fb: Origin | None, erased: set[str], secret: bytes
) -> list[str]:
    """The fields of a row of generated traffic that differ from what was sent (an erased value reads null)."""
    from preflog.privacy.pseudonym import pseudonym

    assert inf.event.record is not None
    rec = inf.event.record
    inf_erased = inf.key_id in erased

    def sent(text: Any, gone: bool) -> Any:
        return None if gone and text is not None else text

    want: dict[str, Any] = {
        "erased": inf_erased,
        "prompt": sent(rec["prompt"], inf_erased),
        "prompt_messages": [sent(m["content"], inf_erased) for m in rec["prompt_messages"] or []],
        "user_id": pseudonym(rec["context"]["user_id"], secret),
    }
    got: dict[str, Any] = {
        "erased": row["erased"],
        "prompt": row["prompt"],
        "prompt_messages": [m["content"] for m in row["prompt_messages"] or []],
        "user_id": (row["context"] or {}).get("user_id"),
    }
    texts = [c["text"] for c in rec["candidates"]]
    if table == "pairs":
        want["chosen"] = sent(texts[row["chosen_index"]], inf_erased)
        want["rejected"] = sent(texts[row["rejected_index"]], inf_erased)
        got["chosen"], got["rejected"] = row["chosen"], row["rejected"]
        want["inference_metadata"] = {k: sent(v, inf_erased) for k, v in (rec.get("metadata") or {}).items()}
        got["inference_metadata"] = _user_meta(row["inference_metadata"])
        if fb is not None and fb.event.record is not None:
            fb_erased = fb.key_id in erased
            want["rationale"] = sent(fb.event.record.get("rationale"), fb_erased)
            got["rationale"] = row["rationale"]
            want["feedback_metadata"] = {
                k: sent(v, fb_erased) for k, v in (fb.event.record.get("metadata") or {}).items()
            }
            got["feedback_metadata"] = _user_meta(row["feedback_metadata"])
    else:
        want["completion"] = sent(texts[row["completion_index"]], inf_erased)
        got["completion"] = row["completion"]
    return [name for name in want if want[name] != got[name]]


def check(run: Run, events: list[GeneratedEvent]) -> dict[str, Any]:
    """Reads the audit log with the keyring and holds it to the generator's records and the erasure.

    Args:
        run: The run (privacy on), its traffic sent and its log converged.
        events: The generated traffic.

    Returns:
        Per table: generated rows read, of the erased users (generator's truth) and of them read erased,
        other rows readable and equal to what was sent, mismatches; the erasure; ``ok``.
    """
    from preflog.privacy.keyring import Keyring
    from preflog.privacy.pseudonym import pseudonym
    from preflog.sinks.read import read_pairs

    p = run.privacy
    assert p is not None and run.moto is not None
    receipt = p.erasure.get("receipt") or {}
    out: dict[str, Any] = {
        "keys_topic": p.keys_topic,
        "users_erased": len(p.users),
        "erasure": {k: v for k, v in p.erasure.items() if k not in ("started", "ended", "receipt")},
        "keys_erased": len(receipt.get("keys_erased", [])),
        "receipt_rows": receipt.get("rows"),
    }
    try:
        keyring = Keyring.load(p.settings)  # from the keys topic, after every cut (and, --full, broker restart)
        url = f"s3://{run.bucket}/{run.prefix}"
        options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": run.moto.endpoint}}
        tables = {
            # as sent: a conversation turn's own messages (its whole history is another check's)
            t: read_pairs(url, table=t, storage_options=options, keys=keyring, histories=False).to_pylist()
            for t in ("pairs", "unpaired")
        }
    except Exception as exc:  # e.g. a key the keys topic lost: the keyring names it
        out.update(ok=False, error=f"reading the log with the keyring: {type(exc).__name__}: {exc}")
        return out
    erased_keys = set(keyring.snapshot.erased)
    subjects = {pseudonym(u, p.secret) for u in p.users}
    origins, clear = _origins(run, events)
    keys_of_others = {o.key_id for o in origins.values() if o.key_id in erased_keys and o.subject not in subjects}
    started, ended = p.erasure.get("started", float("inf")), p.erasure.get("ended", float("inf"))
    truth = expected_outcomes(events)
    request_of = {e.record["feedback_id"]: e.key for e in events if e.event_type == "feedback" and e.record}
    inference_of = {o.event.key: o for o in origins.values() if o.event.event_type == "inference"}
    ok = not p.erasure.get("error") and p.erasure.get("exit_code") == 0 and not keys_of_others and not clear
    for table, want_ids in (("pairs", truth.pairs), ("unpaired", truth.signals)):
        ident = (
            ("feedback_id", "chosen_index", "rejected_index")
            if table == "pairs"
            else ("feedback_id", "completion_index")
        )
        report: Counter[str] = Counter()
        mismatches: list[dict[str, Any]] = []
        read_erased: set[tuple[Any, ...]] = set()
        for row in tables[table]:
            key = tuple(row[c] for c in ident)
            inf = origins.get(_where(row["inference_offset"]) or ("", -1, -1))
            if inf is None or inf.key_id is None:  # a raw input's row (movers, companions of bad inputs)
                report["raw rows"] += 1
                sealed_look = isinstance(row["prompt"], str) and row["prompt"].startswith("pf1:")
                if row.get("erased") or sealed_look:
                    mismatches.append({"row": list(key), "fields": ["raw row read as sealed or erased"]})
                continue
            fb = origins.get(_where(row["feedback_offset"]) or ("", -1, -1))
            report["generated rows"] += 1
            assert inf.event.record is not None
            mine = inf.event.record["context"]["user_id"] in p.users
            if row["erased"]:
                read_erased.add(key)
                if not mine:
                    report["read erased, of other users"] += 1
            elif not mine:
                report[OTHER] += 1
            wrong = _compare(row, table, inf, fb, erased_keys, p.secret)
            if wrong:
                mismatches.append({"row": list(key), "fields": wrong})
            elif not mine:
                report[OTHER_OK] += 1
        # the generator's ground truth: the rows of the erased users, by when their inference was sealed
        theirs: Counter[str] = Counter()
        expected_erased: set[tuple[Any, ...]] = set()
        for want in want_ids:
            inf = inference_of.get(request_of.get(want[0], ""))
            if inf is None or inf.event.record is None or inf.event.record["context"]["user_id"] not in p.users:
                continue
            if inf.key_id in erased_keys:
                expected_erased.add(want)
            sealed = inf.sealed_at or 0.0
            phase = BEFORE if sealed < started else DURING if sealed <= ended else AFTER
            theirs[phase] += 1
            theirs[f"{phase}, read erased"] += want in read_erased
        report.update(theirs)
        report.update(
            {
                "of the erased users (generator)": sum(theirs[phase] for phase in (BEFORE, DURING, AFTER)),
                "read erased": len(read_erased),
                "expected erased (their key erased)": len(expected_erased),
                "read erased but not expected": len(read_erased - expected_erased),
                "expected erased but not read erased": len(expected_erased - read_erased),
                "mismatched rows": len(mismatches),
            }
        )
        out[table] = {**report, "mismatch_sample": mismatches[:10]}
        ok = (
            ok
            and not mismatches
            and theirs[f"{BEFORE}, read erased"] == theirs[BEFORE]
            and read_erased == expected_erased
            and not report["read erased, of other users"]
            and report[OTHER_OK] == report[OTHER]
        )
    ok = ok and out["pairs"].get(BEFORE, 0) > 0  # the erasure reached rows, or it tested nothing
    out["erased_keys_of_other_subjects"] = len(keys_of_others)
    out["sent_with_personal_text_in_the_clear"] = len(clear)
    out["in_the_clear_sample"] = clear[:10]
    out["ok"] = bool(ok)
    return out


def _phase(t: dict[str, Any], phase: str) -> str:
    return f"{t.get(phase + ', read erased', 0)}/{t.get(phase, 0)}"


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The privacy lines of the report table."""
    rows: list[tuple[str, str]] = [(f"privacy: SDK sealing, keys on topic {r['keys_topic']}", "")]
    e = r.get("erasure", {})
    rows.append(
        (
            "  users erased midway (preflog erase)",
            f"{r['users_erased']} ({r['keys_erased']} data keys, exit {e.get('exit_code')}, "
            f"{e.get('traffic_s')} s into the traffic, took {e.get('took_s')} s; rows then {r.get('receipt_rows')})"
            + (f" ERROR {e['error']}" if e.get("error") else ""),
        )
    )
    if r.get("error"):
        rows.append(("  reading the log with the keyring", f"FAILED: {r['error'][:300]}"))
        return rows
    for table, name in (("pairs", "pairs"), ("unpaired", "signals")):
        t = r[table]
        rows += [
            (
                f"  their {name} (generator) / read erased",
                f"{t['of the erased users (generator)']} / {t['read erased']} (erased / sealed: before the "
                f"erasure {_phase(t, BEFORE)}, while it ran {_phase(t, DURING)}, after {_phase(t, AFTER)})",
            ),
            (
                f"  other {name} readable and equal to what was sent",
                f"{t.get(OTHER_OK, 0)} / {t.get(OTHER, 0)}",
            ),
            (
                f"  {name}: erased not as expected / of other users / mismatched",
                f"{t['read erased but not expected'] + t['expected erased but not read erased']} / "
                f"{t.get('read erased, of other users', 0)} / {t['mismatched rows']}",
            ),
            (f"  {name} of raw inputs (unsealed)", str(t.get("raw rows", 0))),
        ]
    rows.append(("  erased data keys of other subjects", str(r["erased_keys_of_other_subjects"])))
    rows.append(
        ("  events the SDK sent with a personal text in the clear", str(r["sent_with_personal_text_in_the_clear"]))
    )
    rows.append(("  privacy checks", "ok" if r["ok"] else "FAILED"))
    return rows
