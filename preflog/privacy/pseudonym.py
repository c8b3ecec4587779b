"""Keyed pseudonyms: the same raw id always gives the same pseudonym, and nobody without the secret can link them.

A pseudonym is ``psn_`` and the first 32 hex digits (128 bits) of HMAC-SHA256(secret, raw id). The SDK
replaces user, session and annotator ids by their pseudonyms before anything is encoded, so raw ids never
reach Kafka; ``preflog privacy pseudonym ID`` gives support staff the same value from the same secret.
An event without a subject is its own subject: the pseudonym of ``request:<request_id>``, so it can be
erased by its request id.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["PREFIX", "is_pseudonym", "pseudonym", "request_subject"]

PREFIX = "psn_"
_SHAPE = re.compile(r"psn_[0-9a-f]{32}")


def pseudonym(raw: str, secret: bytes) -> str:
    """The pseudonym of ``raw`` under ``secret``; a pseudonym is returned as it is."""
    if is_pseudonym(raw):
        return raw
    return PREFIX + hmac.new(secret, raw.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def is_pseudonym(text: str) -> bool:
    """Whether ``text`` has a pseudonym's shape."""
    return bool(_SHAPE.fullmatch(text))


def request_subject(request_id: str, secret: bytes) -> str:
    """The subject of an event that names none: its request, alone."""
    return pseudonym("request:" + request_id.lower(), secret)
