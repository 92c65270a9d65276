"""Personal data is masked before a message is stored, in every format people type; ordinary numbers are kept."""

from __future__ import annotations

import time

import pytest

from chatbot.learning.redact import redact
from tests.support import record_figures

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # E-mail addresses, also with a fullwidth at sign.
        ("mail me at john.doe+shop@example.co.uk please", "mail me at [email] please"),
        ("mail john\uff20example.com", "mail [email]"),
        ("a@b.c and 555-123-4567", "[email] and [phone]"),
        # Phone numbers, with any separator people type.
        ("call +44 20 7946 0958", "call [phone]"),
        ("my number is (555) 123-4567", "my number is [phone]"),
        ("ring 0612345678 now", "ring [phone] now"),
        ("call 030/1234567", "call [phone]"),
        (f"call 030{NBSP}1234{NBSP}5678", "call [phone]"),
        ("call 0612\t345\t678", "call [phone]"),
        ("call \uff10\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "call [phone]"),  # fullwidth
        # Card numbers (Luhn-valid), split by any separator or glued to letters.
        ("card 4111 1111 1111 1111 exp 12/27", "card [card] exp 12/27"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("pay with 378282246310005", "pay with [card]"),
        (f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111", "card [card]"),
        ("card 4111\u20101111\u20101111\u20101111", "card [card]"),  # U+2010 hyphen
        ("card 4111\u20131111\u20131111\u20131111", "card [card]"),  # en dash
        ("card 4111/1111/1111/1111", "card [card]"),
        ("card 4111_1111_1111_1111", "card [card]"),
        ("card 4111\t1111\t1111\t1111", "card [card]"),
        ("card4111111111111111exp", "card[card]exp"),
        ("4111111111111112", "[phone]"),  # fails Luhn: not a card, but still too long to keep
        # IBANs, compact or grouped; a failing checksum is no IBAN (its digits are still masked).
        ("IBAN DE89370400440532013000 thanks", "IBAN [iban] thanks"),
        ("to DE89 3704 0044 0532 0130 00.", "to [iban]."),
        ("GB82WEST12345698765432", "[iban]"),
        ("DE00370400440532013000", "DE[phone]"),
        # National ids with letters, found by their checksums.
        ("my NIE is X1234567L", "my NIE is [id]"),
        ("dni 12345678Z", "dni [id]"),
        ("codice RSSMRA85T10A562S ok", "codice [id] ok"),
        ("PPS 1234567T", "PPS [id]"),
        # Ordinary numbers stay.
        ("order number 12345", "order number 12345"),
        ("order ACM-20931 please", "order ACM-20931 please"),
        ("delivered on 2024-01-15", "delivered on 2024-01-15"),
        ("delivered on 15/01/2024", "delivered on 15/01/2024"),
        ("I want 3 shirts in size 42", "I want 3 shirts in size 42"),
        ("no digits, no at sign", "no digits, no at sign"),
        # What cannot be stored as typed is stored safely.
        ("\ud800 call 0612345678", "\ufffd call [phone]"),
    ],
)
def test_redact_masks_personal_data_and_keeps_other_numbers(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("unit", "tail"), [("a", "@"), ("a.", "@"), ("1 ", ""), ("a-", "@"), ("a1", "@b")])
def test_redaction_time_is_linear_in_the_message(unit: str, tail: str) -> None:
    """Eight times the text costs about eight times the time: no crafted message stalls the writer."""

    def fastest_seconds(text: str) -> float:
        timings = []
        for _ in range(9):
            started = time.perf_counter()
            redact(text)
            timings.append(time.perf_counter() - started)
        return min(timings)  # the least disturbed run: other processes share the machine

    ratio = fastest_seconds(unit * 2000 + tail) / fastest_seconds(unit * 250 + tail)
    assert ratio < 30, f"8x the text took {ratio:.0f}x the time (quadratic is 64x)"


def test_figures() -> None:
    """Record the format table's size and the cost of the costliest crafted message for docs/reliability.md."""
    formats = test_redact_masks_personal_data_and_keeps_other_numbers.pytestmark[0].args[1]
    crafted = ["a-" * 2000 + "@", "a1" * 2000 + "@b", "1 " * 2000, "a." * 2000 + "@"]
    worst = 0.0
    for text in crafted:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            redact(text)
            timings.append(time.perf_counter() - started)
        worst = max(worst, min(timings))
    masked = sum(expected != text for text, expected in formats)
    record_figures(
        "redaction",
        {
            "formats": len(formats),
            "masked": masked,
            "kept": len(formats) - masked,
            "crafted_chars": 4000,
            "worst_ms": round(worst * 1000, 2),
        },
    )
    assert worst < 0.5
