"""Redaction of common personal data in text, before an event is encoded (a building block of issue 20).

Each redactor finds one kind of personal data and replaces it with a placeholder (``[EMAIL]``,
``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[IP]``). Where the kind has a check digit, the check decides:
a payment card must pass the Luhn check, an IBAN the ISO 13616 mod-97 check, an IP address must be one
(:mod:`ipaddress`), so order numbers, version strings and dates are left alone. A user-supplied
callable (``str -> str``) is a redactor too (kind ``custom``).

    text, counts = redact("write to ana@example.org", DEFAULT)   # ("write to [EMAIL]", {"email": 1})

Not wired into the SDK yet: issue 20 has it applied to every text field before encoding, with counts
per kind in metrics.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT", "Redactor", "card", "email", "iban", "ip", "luhn", "mod97", "phone", "redact"]


@dataclass(frozen=True)
class Redactor:
    """One kind of personal data: a pattern, a check of each match, and its placeholder."""

    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] = lambda _: True

    def __call__(self, text: str) -> tuple[str, int]:
        """``text`` with every checked match replaced; how many were."""
        found = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal found
            if not self.check(match.group(0)):
                return match.group(0)
            found += 1
            return f"[{self.kind.upper()}]"

        return self.pattern.sub(replace, text), found


def luhn(digits: str) -> bool:
    """The Luhn check of a card number's digits."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def mod97(iban: str) -> bool:
    """The ISO 13616 check of an IBAN (spaces ignored): the rearranged number mod 97 is 1."""
    compact = iban.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _is_card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_EDGE = r"(?<![\w.+-])"  # not inside a longer word, number or address
email = Redactor("email", re.compile(_EDGE + r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"))
iban = Redactor("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), mod97)
card = Redactor("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _is_card)
phone = Redactor(
    "phone",
    re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}"  # +44 20 7946 0958, +1 (415) 555-0100
        r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"  # (415) 555-0100, 415-555-0100
    ),
)
ip = Redactor(
    "ip",
    re.compile(r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])"),
    _is_ip,
)
#: the built-in redactors, in the order they run (a card number is not a phone number)
DEFAULT: tuple[Redactor, ...] = (email, iban, card, phone, ip)


def redact(
    text: str, redactors: Iterable[Redactor | Callable[[str], str]] = DEFAULT
) -> tuple[str, dict[str, int]]:
    """``text`` with every redactor applied in turn; the count of replacements per kind (only kinds found)."""
    counts: dict[str, int] = {}
    for redactor in redactors:
        if isinstance(redactor, Redactor):
            text, n = redactor(text)
            kind = redactor.kind
        else:
            changed = redactor(text)
            n, text, kind = int(changed != text), changed, "custom"
        if n:
            counts[kind] = counts.get(kind, 0) + n
    return text, counts
