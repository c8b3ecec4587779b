"""Redactors on realistic text: what must go, and the near-misses that must stay."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from preflog.producers.redact import DEFAULT, count, luhn, mod97, redact, redact_record, redactors
from preflog.schemas.events import feedback_record, inference_record

#: (text, what redact gives, counts per kind)
CASES = [
    ("Write to ana.lopez+work@mail.example.org today.", "Write to [EMAIL] today.", {"email": 1}),
    ("Cc: j_doe@sub.example.co.uk, ANA@EXAMPLE.COM", "Cc: [EMAIL], [EMAIL]", {"email": 2}),
    ("Call me at +44 20 7946 0958 or +1 (415) 555-0100.", "Call me at [PHONE] or [PHONE].", {"phone": 2}),
    ("Office: (415) 555-0100, cell 415-555-0199.", "Office: [PHONE], cell [PHONE].", {"phone": 2}),
    ("My card is 4111 1111 1111 1111, exp 12/29.", "My card is [CARD], exp 12/29.", {"card": 1}),
    ("Card 5500-0000-0000-0004 was declined.", "Card [CARD] was declined.", {"card": 1}),
    ("IBAN GB82 WEST 1234 5698 7654 32 please.", "IBAN [IBAN] please.", {"iban": 1}),
    ("Pay DE89370400440532013000 by Friday.", "Pay [IBAN] by Friday.", {"iban": 1}),
    (
        "The server at 192.168.1.20 and 2001:db8::8a2e:370:7334 are down.",
        "The server at [IP] and [IP] are down.",
        {"ip": 2},
    ),
    # near-misses: none of these is personal data of these kinds
    ("Order 4111 1111 1111 1112 shipped.", "Order 4111 1111 1111 1112 shipped.", {}),  # fails Luhn
    ("IBAN GB82 WEST 1234 5698 7654 33 is a typo.", "IBAN GB82 WEST 1234 5698 7654 33 is a typo.", {}),  # bad check
    # a version of three or five parts is no address (one of four parts is read as one: it is a valid IPv4)
    ("Upgrade to version 1.2.3 or 2.10.0.1.4 beta.", "Upgrade to version 1.2.3 or 2.10.0.1.4 beta.", {}),
    ("It costs 256.1.1.1 credits, meet at 12:30:45.", "It costs 256.1.1.1 credits, meet at 12:30:45.", {}),
    ("ISBN 978-3-16-148410-0, printed 2026-12-07.", "ISBN 978-3-16-148410-0, printed 2026-12-07.", {}),
    ("Ping @ana on chat, or user@localhost.", "Ping @ana on chat, or user@localhost.", {}),
    ("We sold 1234567 units; ticket #55512345.", "We sold 1234567 units; ticket #55512345.", {}),
    ("The ratio 3.14159 and 1e-05 are fine.", "The ratio 3.14159 and 1e-05 are fine.", {}),
]


@pytest.mark.parametrize(("text", "expected", "counts"), CASES, ids=[c[0][:30] for c in CASES])
def test_each_kind_is_redacted_and_near_misses_are_not(text: str, expected: str, counts: dict[str, int]) -> None:
    assert redact(text) == (expected, counts)


def test_the_checks_against_published_numbers() -> None:
    assert luhn("4111111111111111") and luhn("79927398713") and not luhn("79927398710")
    assert mod97("GB82 WEST 1234 5698 7654 32") and mod97("DE89370400440532013000")
    assert not mod97("GB82WEST12345698765433")


def test_a_callable_is_a_redactor_and_counted_as_custom() -> None:
    def names(text: str) -> str:
        return text.replace("Ana Lopez", "[NAME]")

    assert redact("Ana Lopez (ana@example.org) wrote.", (*DEFAULT, names)) == (
        "[NAME] ([EMAIL]) wrote.",
        {"email": 1, "custom": 1},
    )


RID = "0b9c6b2e-4a55-4f0e-8f7e-2d1c3b4a5e6f"


def test_redactors_by_name_and_unknown_names_listed() -> None:
    assert [getattr(r, "kind", None) for r in redactors(["ip", "email"])] == ["email", "ip"]  # DEFAULT's order
    assert redactors(["all"]) == DEFAULT
    with pytest.raises(ValueError, match=r"unknown redactor.*'ssn'.*choose from"):
        redactors(["ssn"])


def test_every_text_field_of_an_event_is_redacted_and_counted() -> None:
    inference = inference_record({
        "request_id": RID, "event_time": "2026-12-01T10:00:00Z",
        "prompt": "mail ana@example.org",
        "prompt_messages": [{"role": "user", "content": "call +44 20 7946 0958"}],
        "candidates": ["card 4111 1111 1111 1111", {"text": "ok", "messages": [
            {"role": "assistant", "content": "host 10.0.0.1"}]}],
        "model": "m", "metadata": {"note": "bob@example.com", "ticket": "T-1"},
        "context": {"user_id": "u@example.org"},
    })  # fmt: skip
    out, counts = redact_record("InferenceEvent", inference, redactors(["all"]))
    assert out["prompt"] == "mail [EMAIL]"
    assert out["prompt_messages"][0]["content"] == "call [PHONE]"
    assert out["candidates"][0]["text"] == "card [CARD]"
    assert out["candidates"][1]["messages"][0]["content"] == "host [IP]"
    assert out["metadata"] == {"note": "[EMAIL]", "ticket": "T-1"}
    assert out["context"]["user_id"] == "u@example.org"  # ids are the sealer's (pseudonyms), not redaction's
    assert counts == {"email": 2, "phone": 1, "card": 1, "ip": 1}
    assert inference["prompt"] == "mail ana@example.org"  # the caller's record is not changed

    feedback = feedback_record({
        "feedback_id": "5f0c1a3e-8c9b-4d7e-9a41-0b6a2c3d4e5f", "request_id": RID,
        "event_time": "2026-12-01T10:01:00Z", "kind": "PAIRWISE",
        "pairwise": {"chosen": 1, "rejected": 0}, "source": {"type": "END_USER", "id": "u"},
        "rationale": "see DE89370400440532013000",
    })  # fmt: skip
    out, counts = redact_record("FeedbackEvent", feedback, redactors(["iban"]))
    assert out["rationale"] == "see [IBAN]" and counts == {"iban": 1}


def test_counts_reach_the_metric() -> None:
    before = REGISTRY.get_sample_value("preflog_sdk_redactions_total", {"kind": "email"}) or 0.0
    count({"email": 3, "ip": 0})
    assert REGISTRY.get_sample_value("preflog_sdk_redactions_total", {"kind": "email"}) == before + 3
