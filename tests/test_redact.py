"""Personal data is masked before a message is stored; ordinary numbers are kept."""

from __future__ import annotations

import pytest

from chatbot.learning.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at john.doe+shop@example.co.uk please", "mail me at [email] please"),
        ("call +44 20 7946 0958", "call [phone]"),
        ("my number is (555) 123-4567", "my number is [phone]"),
        ("ring 0612345678 now", "ring [phone] now"),
        ("card 4111 1111 1111 1111 exp 12/27", "card [card] exp 12/27"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("pay with 378282246310005", "pay with [card]"),
        ("order number 12345", "order number 12345"),
        ("delivered on 2024-01-15", "delivered on 2024-01-15"),
        ("I want 3 shirts in size 42", "I want 3 shirts in size 42"),
        ("a@b.c and 555-123-4567", "[email] and [phone]"),
    ],
)
def test_redact_masks_personal_data_and_keeps_other_numbers(text: str, expected: str) -> None:
    assert redact(text) == expected
