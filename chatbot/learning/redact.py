"""Remove personal data from a message before it is stored: e-mail addresses, phone and card numbers.

Redaction errs on the side of privacy: a long order number may be hidden as a phone number, which
costs a reviewer a digit string, whereas a stored card number could never be taken back.
"""

from __future__ import annotations

import re

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"
CARD_MARK = "[card]"

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the separators people type inside numbers: spaces, dots, dashes, brackets.
_NUMBER = re.compile(r"(?<![\w])\+?\(?\d[\d ().\-]{5,}\d(?![\w])")
_SUSPECT = re.compile(r"@|\d[\d ().\-]{5,}\d")  # anything either pattern below could match
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS = 8  # shorter runs are order numbers, quantities and years
MIN_CARD_DIGITS = 13  # payment card numbers have 13 to 19 digits
MAX_CARD_DIGITS = 19


def redact(text: str) -> str:
    """Return the text with e-mail addresses, phone numbers and card-like numbers replaced by marks."""
    if not _SUSPECT.search(text):  # most messages: one scan, no substitution
        return text
    text = _EMAIL.sub(EMAIL_MARK, text)
    return _NUMBER.sub(_number_mark, text)


def _number_mark(match: re.Match[str]) -> str:
    number = match.group(0)
    if _ISO_DATE.fullmatch(number.strip()):
        return number
    digits = sum(character.isdigit() for character in number)
    if MIN_CARD_DIGITS <= digits <= MAX_CARD_DIGITS and not number.startswith("+"):
        return CARD_MARK
    if digits >= MIN_PHONE_DIGITS:
        return PHONE_MARK
    return number
