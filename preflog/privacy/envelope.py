"""One sealed text: ``pf1:<key id>:<base64 of nonce + AES-256-GCM ciphertext and tag>``.

A sealed value stays an Avro string, so no schema changes and the processor and the sink move it as
they move any text. The key id (16 hex digits) names the data key in the keys topic; it is also the
associated data, so a sealed value cannot be moved under another key. A text is sealed only when the SDK
has a key for it; readers open every value that has this shape and leave any other text as it is.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["MARK", "SHAPE", "SealError", "key_of", "key_sql", "open_text", "seal", "sealed", "shape_sql"]

MARK = "pf1:"
NONCE = 12
_HEX = frozenset("0123456789abcdef")
#: a sealed value, whole: the mark, a 16-hex-digit key id, ':', and the base64 of a nonce (12 bytes), the
#: text and a tag (16 bytes): at least 28 bytes, 40 characters. A person's text of this shape is not plausible;
#: one that only starts like it (``pf1:0123456789abcdef: hello``) is text, never a lost key
SHAPE = r"^pf1:[0-9a-f]{16}:(?:[A-Za-z0-9+/]{4}){9,}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$"
_SHAPED = re.compile(SHAPE)


class SealError(ValueError):
    """A sealed value that does not open with its key (tampered, or sealed under another key)."""


def seal(aead: AESGCM, key_id: str, text: str) -> str:
    """``text`` sealed with the data key ``key_id``."""
    nonce = os.urandom(NONCE)
    body = aead.encrypt(nonce, text.encode("utf-8"), key_id.encode("ascii"))
    return f"{MARK}{key_id}:{base64.b64encode(nonce + body).decode('ascii')}"


def sealed(value: object) -> bool:
    """Whether ``value`` has a sealed text's shape (its mark, a key id, a colon)."""
    return isinstance(value, str) and key_of(value) is not None


def shape_sql(column: str) -> str:
    """:data:`SHAPE` as a DuckDB condition on ``column`` (false for null)."""
    return f"coalesce(regexp_full_match({column}, '{SHAPE}'), false)"


def key_sql(column: str) -> str:
    """:func:`key_of` as a DuckDB expression on ``column`` (null where it is not a sealed value)."""
    return f"CASE WHEN {shape_sql(column)} THEN substr({column}, 5, 16) END"


def key_of(value: str) -> str | None:
    """The key id of a sealed text, or None when ``value`` does not have a sealed text's shape."""
    if not value.startswith(MARK) or _SHAPED.match(value) is None:
        return None
    return value[4:20]


def open_text(aead: AESGCM, key_id: str, value: str) -> str:
    """The text sealed in ``value`` (whose key id is ``key_id``).

    Raises:
        SealError: the value was altered or sealed under another key.
    """
    try:
        raw = base64.b64decode(value[21:], validate=True)
        return aead.decrypt(raw[:NONCE], raw[NONCE:], key_id.encode("ascii")).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError):
        raise SealError(f"a value sealed under data key {key_id} does not open: altered, or not sealed so") from None
