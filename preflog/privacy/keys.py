"""Master keys and the data keys they wrap.

Each subject's personal fields are sealed with a *data key* (AES-256-GCM, 32 random bytes) that lives
only wrapped: sealed under the *master key* (AES-256-GCM again, the key record's subject and id as
associated data). The wrapped keys are records of the keys topic (:mod:`.store`); erasing a subject
deletes its records there, and then every copy of its sealed fields, wherever it is, stays sealed.

The master key is 32 random bytes, base64, from a file or the environment (``privacy.master_key_file``,
``privacy.master_key``). It is named by its id, the first 16 hex digits of its SHA-256, which each key
record carries, so a reader missing the master key that wrapped a record says which one. A key
management service is an extension point: anything with ``id``, ``wrap`` and ``unwrap``
(:class:`Wrapper`) can stand in for :class:`MasterKey`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from preflog.errors import ConfigError

__all__ = [
    "DataKey",
    "KeyError_",
    "MasterKey",
    "Wrapper",
    "generate_master",
    "load_masters",
    "load_secret",
    "master_from_file",
    "new_key_id",
    "pick",
]


class KeyError_(ConfigError):
    """A key is missing or does not fit: the message names the fix."""


class Wrapper(Protocol):
    """What wraps data keys: a master key here, a KMS client as an extension."""

    @property
    def id(self) -> str: ...

    def wrap(self, key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes: ...


class MasterKey:
    """A 32-byte master key held in memory."""

    def __init__(self, key: bytes, origin: str = "") -> None:
        if len(key) != 32:
            raise KeyError_(f"the master key {origin} has {len(key)} bytes, not 32: preflog privacy new-key makes one")
        self._aead = AESGCM(key)
        self.id = hashlib.sha256(key).hexdigest()[:16]
        self.origin = origin

    def wrap(self, key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad)
        except InvalidTag:
            raise KeyError_(
                f"a data key wrapped by master key {self.id} does not unwrap: its record was altered"
            ) from None

    def __repr__(self) -> str:
        return f"MasterKey(id={self.id})"


def new_key_id() -> str:
    """A fresh data key id: 16 hex digits."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class DataKey:
    """One wrapped data key, as the keys topic holds it (no secret in the clear)."""

    subject: str
    key_id: str
    master: str  # id of the master key that wrapped it
    wrapped: str  # base64
    created_ms: int
    expires_ms: int | None = None  # every event sealed with it is past its retention from then on
    consent: str | None = None  # what the events sealed with it allow (fields.consent_text); None: unstated

    @property
    def name(self) -> str:
        """Its record's key in the keys topic."""
        return f"{self.subject}/{self.key_id}"

    def aad(self) -> bytes:
        return f"{self.subject}/{self.key_id}".encode("ascii")

    @classmethod
    def make(
        cls, subject: str, master: Wrapper, created_ms: int, expires_ms: int | None = None, consent: str | None = None
    ) -> tuple[DataKey, bytes]:
        """A new data key for ``subject``: its record and the key itself."""
        key = AESGCM.generate_key(bit_length=256)
        key_id = new_key_id()
        record = cls(subject, key_id, master.id, "", created_ms, expires_ms, consent)
        wrapped = base64.b64encode(master.wrap(key, record.aad())).decode("ascii")
        return replace(record, wrapped=wrapped), key

    def unwrap(self, master: Wrapper) -> bytes:
        return master.unwrap(base64.b64decode(self.wrapped), self.aad())

    def rewrapped(self, old: Wrapper, new: Wrapper) -> DataKey:
        """The same data key wrapped by ``new`` instead."""
        key = self.unwrap(old)
        wrapped = base64.b64encode(new.wrap(key, self.aad())).decode("ascii")
        return replace(self, master=new.id, wrapped=wrapped)

    def to_bytes(self) -> bytes:
        return json.dumps({"v": 1, **asdict(self)}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DataKey:
        raw: dict[str, Any] = json.loads(data)
        raw.pop("v", None)
        return cls(**raw)


def _read_key_text(text: str, origin: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise KeyError_(f"the key in {origin} is not base64: make one with preflog privacy new-key") from None


def generate_master(path: Path) -> MasterKey:
    """Write a new master key to ``path`` (mode 0600; refuses to overwrite) and return it."""
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key).decode("ascii") + "\n")
    return MasterKey(key, str(path))


def load_masters(settings: Any) -> list[MasterKey]:
    """The master keys of ``settings.privacy``: the current one first, then those being rotated out.

    Raises:
        KeyError_: none is configured, or a file is missing or malformed.
    """
    p = settings.privacy
    keys: list[MasterKey] = []
    if p.master_key is not None:
        keys.append(MasterKey(_read_key_text(p.master_key.get_secret_value(), "PREFLOG_PRIVACY__MASTER_KEY"), "(env)"))
    elif p.master_key_file is not None:
        keys.append(master_from_file(Path(p.master_key_file), "privacy.master_key_file"))
    else:
        raise KeyError_(
            "privacy is on but no master key is set: set PREFLOG_PRIVACY__MASTER_KEY_FILE to the file of the key "
            "that wrapped the data keys (preflog privacy new-key makes one)"
        )
    keys += [master_from_file(Path(f), "privacy.previous_master_key_files") for f in p.previous_master_key_files]
    return keys


def master_from_file(path: Path, setting: str) -> MasterKey:
    """The master key in ``path``; KeyError_ naming ``setting`` when it cannot be read."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyError_(f"{setting}: cannot read {path} ({exc.strerror}); restore it from your key backup") from None
    return MasterKey(_read_key_text(text, str(path)), str(path))


def load_secret(settings: Any) -> bytes:
    """The pseudonym secret of ``settings.privacy`` (at least 16 bytes)."""
    p = settings.privacy
    if p.pseudonym_secret is not None:
        secret = p.pseudonym_secret.get_secret_value().encode()
    elif p.pseudonym_secret_file is not None:
        try:
            secret = Path(p.pseudonym_secret_file).read_bytes().strip()
        except OSError as exc:
            raise KeyError_(f"privacy.pseudonym_secret_file: cannot read it ({exc.strerror})") from None
    else:
        raise KeyError_(
            "privacy is on but no pseudonym secret is set: set PREFLOG_PRIVACY__PSEUDONYM_SECRET_FILE "
            "(preflog privacy new-key --secret makes one); a different secret gives different pseudonyms"
        )
    if len(secret) < 16:
        raise KeyError_("the pseudonym secret is shorter than 16 bytes: use a longer one")
    return secret


def pick(masters: Sequence[Wrapper], master_id: str) -> Wrapper:
    """The master key ``master_id`` among ``masters``; KeyError_ naming the fix when it is not loaded."""
    for m in masters:
        if m.id == master_id:
            return m
    have = ", ".join(m.id for m in masters) or "none"
    raise KeyError_(
        f"data keys were wrapped by master key {master_id}, which is not loaded (loaded: {have}): set "
        "PREFLOG_PRIVACY__MASTER_KEY_FILE to that key, or add it to PREFLOG_PRIVACY__PREVIOUS_MASTER_KEY_FILES "
        "while a rotation is under way; without it the sealed data cannot be read"
    )
