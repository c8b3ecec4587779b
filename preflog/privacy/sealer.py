"""The SDK's side: pseudonymise ids, redact, and seal every personal field before an event is encoded.

For an inference, the subject is the one the caller names (``subject=``), else its ``context.user_id``,
else the request alone (:func:`~.pseudonym.request_subject`). A feedback's subject is the one named, else
that of the inference this producer logged for the same request, else the end user who judged, else the
request. User, session and human judges' ids become pseudonyms; model judges' ids stay as they are.

Personal fields are sealed with a data key of the subject (one per subject, producer, retention
month and consent: the key record carries the consent and expiry, so readers know both for every sealed
row, even of tables without metadata): prompt, prompt messages, candidates' texts and messages,
rationale, and every metadata value except the reserved ``preflog.*`` ones. A new data key is stored
in the key store, and acknowledged, before the first event sealed with it is sent: an event never exists
whose key was never stored.
A watcher drops keys an erasure deleted from the cache (:meth:`Sealer.forget`), so later events of
that subject get a new key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from preflog.schemas.exceptions import ValidationError

from . import fields as f
from .envelope import seal
from .keys import DataKey, Wrapper
from .pseudonym import pseudonym, request_subject
from .store import DirKeyStore, KeyStore

__all__ = ["PRIVACY_FIELDS", "Privacy", "Sealer", "privacy_fields"]

#: fields a caller may pass beside an event's own, about its subject (never encoded as such)
PRIVACY_FIELDS = ("subject", "consent", "retention_days")
HUMANS = ("HUMAN_ANNOTATOR", "END_USER")


class Privacy:
    """What a caller said about an event's subject."""

    def __init__(self, subject: Any = None, consent: Any = None, retention_days: Any = None) -> None:
        self.subject = subject
        self.consent = consent
        self.retention_days = retention_days


def privacy_fields(record_type: str, data: dict[str, Any]) -> Privacy:
    """Take :data:`PRIVACY_FIELDS` out of ``data`` (checked; ValidationError naming the field)."""
    problems: list[str] = []
    p = Privacy(*(data.pop(name, None) for name in PRIVACY_FIELDS))
    if p.subject is not None and (not isinstance(p.subject, str) or not p.subject.strip()):
        problems.append("subject: expected a non-empty id")
    if p.consent is not None:
        try:
            p.consent = f.parse_consent(p.consent)
        except ValueError as exc:
            problems.append(str(exc))
    if p.retention_days is not None:
        days = p.retention_days
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 36_500:
            problems.append("retention_days: expected a number of days from 1 to 36500")
    metadata = data.get("metadata")
    if isinstance(metadata, Mapping):
        reserved = sorted(k for k in metadata if isinstance(k, str) and k.startswith(f.PREFIX))
        if reserved:
            problems.append(
                f"metadata: keys starting with {f.PREFIX!r} are preflog's ({', '.join(reserved)}); "
                "pass subject=, consent= or retention_days= instead"
            )
    if problems:
        raise ValidationError(record_type, problems)
    return p


def stamp(record: dict[str, Any], p: Privacy) -> dict[str, Any]:
    """``record`` with its consent and retention in its metadata (no sealing: privacy off)."""
    extra: dict[str, str] = {}
    if p.consent is not None:
        extra[f.CONSENT] = f.consent_text(p.consent)
    if p.retention_days is not None:
        extra[f.RETENTION] = _days(p.retention_days)
    if not extra:
        return record
    return {**record, "metadata": {**record["metadata"], **extra}}


def _sealed(message: Mapping[str, Any], s: Callable[[str], str]) -> dict[str, Any]:
    """A chat message with its content, its tool calls' arguments and its images' URIs sealed."""
    out = {**message, "content": s(message["content"])}
    if message.get("tool_calls"):
        out["tool_calls"] = [{**c, "arguments": s(c["arguments"])} for c in message["tool_calls"]]
    if message.get("images"):
        out["images"] = [{**i, "uri": s(i["uri"])} for i in message["images"]]
    return out


def _days(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _expiry_month(event_time: datetime, days: float | None) -> int | None:
    """The start (epoch ms) of the month after the one the retention ends in: the key's expiry."""
    if days is None:
        return None
    end = event_time.timestamp() + days * 86400
    t = datetime.fromtimestamp(end, timezone.utc)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp() * 1000)


class Sealer:
    """Seals events for one producer; thread-safe."""

    def __init__(
        self,
        secret: bytes,
        master: Wrapper,
        store: KeyStore | DirKeyStore,
        remember: int = 100_000,
    ) -> None:
        self.secret = secret
        self.master = master
        self.store = store
        self._keys: dict[tuple[str, int | None, str | None], tuple[str, AESGCM]] = {}
        self._subjects: dict[str, str] = {}  # request_id -> subject of the inference this producer sealed
        self._remember = remember
        self._lock = threading.Lock()
        self._forgotten: set[str] = set()  # key ids an erasure deleted (a few per erasure)
        self.keys_made = 0
        self.put_timeout_s = 30.0  # longest a new data key waits for the store (KeyStoreError after)

    def pseudonym(self, raw: str) -> str:
        return pseudonym(raw, self.secret)

    def _key(self, subject: str, event_time: datetime, p: Privacy) -> tuple[str, AESGCM]:
        """The data key of ``subject`` for an event at ``event_time``: one per retention month and consent."""
        expires = _expiry_month(event_time, p.retention_days)
        consent = None if p.consent is None else f.consent_text(p.consent)
        scope = (subject, expires, consent)
        with self._lock:
            found = self._keys.get(scope)
        if found is not None:
            return found
        record, key = DataKey.make(subject, self.master, int(time.time() * 1000), expires, consent)
        self.store.put([record], timeout=self.put_timeout_s)
        made = (record.key_id, AESGCM(key))
        with self._lock:
            stale = record.key_id in self._forgotten  # erased between its put and now: no event may use it
            if not stale:
                cached = self._keys.setdefault(scope, made)
                self.keys_made += cached is made
                if len(self._keys) > self._remember:  # a long-running producer (the API): the oldest goes
                    self._keys.pop(next(iter(self._keys)))
        return self._key(subject, event_time, p) if stale else cached

    def forget(self, key_ids: Sequence[str]) -> int:
        """Drop cached keys an erasure deleted; returns how many were cached."""
        gone = set(key_ids)
        with self._lock:
            self._forgotten |= gone  # a key made but not cached yet is refused when it comes (see _key)
            drop = [k for k, (key_id, _) in self._keys.items() if key_id in gone]
            for k in drop:
                del self._keys[k]
        return len(drop)

    def _ids(self, context: dict[str, Any]) -> dict[str, Any]:
        out = dict(context)
        for name in ("user_id", "session_id"):
            if out.get(name):
                out[name] = self.pseudonym(out[name])
        return out

    def inference(self, record: dict[str, Any], p: Privacy) -> dict[str, Any]:
        """``record`` (validated) with ids pseudonymised and personal fields sealed."""
        context = record.get("context") or {}
        if p.subject is not None:
            subject = self.pseudonym(p.subject)
        elif context.get("user_id"):
            subject = self.pseudonym(context["user_id"])
        else:
            subject = request_subject(record["request_id"], self.secret)
        key_id, aead = self._key(subject, record["event_time"], p)
        sealed: dict[str, str] = {}

        def s(text: str) -> str:  # a text repeated in the event (the prompt as its user message) is sealed once
            if text not in sealed:
                sealed[text] = seal(aead, key_id, text)
            return sealed[text]

        out = dict(record)
        out["prompt"] = s(record["prompt"])
        if record.get("prompt_messages") is not None:
            out["prompt_messages"] = [_sealed(m, s) for m in record["prompt_messages"]]
        out["candidates"] = [
            {
                **c,
                "text": s(c["text"]),
                "messages": None if c.get("messages") is None else [_sealed(m, s) for m in c["messages"]],
            }
            for c in record["candidates"]
        ]
        out["context"] = self._ids(context)
        out["metadata"] = self._metadata(record["metadata"], s, subject, key_id, p)
        with self._lock:
            self._subjects[record["request_id"]] = subject
            if len(self._subjects) > self._remember:
                self._subjects.pop(next(iter(self._subjects)))
        return out

    def feedback(self, record: dict[str, Any], p: Privacy) -> dict[str, Any]:
        """``record`` (validated) with the judge's id pseudonymised and rationale and metadata sealed."""
        source = dict(record["source"])
        human = source.get("type") in HUMANS
        with self._lock:
            remembered = self._subjects.get(record["request_id"])
        if p.subject is not None:
            subject = self.pseudonym(p.subject)
        elif remembered is not None:
            subject = remembered
        elif source.get("type") == "END_USER" and source.get("id"):
            subject = self.pseudonym(source["id"])
        else:
            subject = request_subject(record["request_id"], self.secret)
        if human and source.get("id"):
            source["id"] = self.pseudonym(source["id"])
        key_id, aead = self._key(subject, record["event_time"], p)

        def s(text: str) -> str:
            return seal(aead, key_id, text)

        out = dict(record)
        out["source"] = source
        if record.get("rationale") is not None:
            out["rationale"] = s(record["rationale"])
        out["metadata"] = self._metadata(record["metadata"], s, subject, key_id, p)
        return out

    @staticmethod
    def _metadata(
        metadata: Mapping[str, str], s: Callable[[str], str], subject: str, key_id: str, p: Privacy
    ) -> dict[str, str]:
        out = {k: s(v) for k, v in metadata.items()}
        out[f.SUBJECT] = subject
        out[f.KEY] = key_id
        return stamp({"metadata": out}, p)["metadata"]
