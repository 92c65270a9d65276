"""Remove personal data from a message before it is stored: e-mail addresses, IBANs, ids, phone and card numbers.

Redaction errs on the side of privacy: a long order number may be hidden as a phone number, which
costs a reviewer a digit string, whereas a stored card number could never be taken back. So every
run of eight or more digits is masked, whatever separates its digits; checksums (Luhn for cards,
ISO 7064 for IBANs, the national ids' own) only decide which mark a run gets, and find the numbers
that are personal although short (a Spanish NIE has seven digits).

Redaction works on the NFKC form of the text, which is also what is stored: fullwidth at signs
and digits (U+FF20, U+FF10 to U+FF19), no-break spaces and ligatures become the characters a
pattern expects, so they cannot hide a number or an address. The patterns run on RE2, in time
linear in the message, so a crafted message costs no more than an ordinary one of its length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import re2
from stdnum import iban, luhn
from stdnum.es import dni, nie
from stdnum.ie import pps
from stdnum.it import codicefiscale

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"
CARD_MARK = "[card]"
IBAN_MARK = "[iban]"
ID_MARK = "[id]"

MIN_PHONE_DIGITS = 8  # shorter runs are order numbers, quantities and years
MIN_CARD_DIGITS = 13  # payment card numbers have 13 to 19 digits
MAX_CARD_DIGITS = 19
# National ids that hold letters and fewer than MIN_PHONE_DIGITS digits, so only their checksum
# finds them (python-stdnum's validators; the all-digit ones are masked as long digit runs).
NATIONAL_IDS: tuple[Callable[[str], bool], ...] = (
    dni.is_valid,
    nie.is_valid,
    pps.is_valid,
    codicefiscale.is_valid,
)

ID_LENGTHS = frozenset({8, 9, 16})  # the lengths of NATIONAL_IDS, separators left out

_WORD = r"\p{L}\p{N}_"
# What people type between the digits of one number: spaces of any kind (tabs too), dots, slashes,
# underscores, brackets and every dash (hyphen, U+2010 to U+2015, minus). At most three in a row.
_SEPARATOR = r"[\s.\-/_()\x{2010}-\x{2015}\x{2212}]"


def _compile(pattern: str) -> Any:  # re2._Regexp, which re2 does not export as a type
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


_EMAIL = _compile(rf"[{_WORD}.+'\-]+@[{_WORD}\-]+(?:\.[{_WORD}\-]+)+")
_IBAN = _compile(r"(?i)[a-z]{2}\d{2}(?:[ \-]?[a-z0-9]){11,30}")
_ID = _compile(rf"[{_WORD}](?:[{_WORD}\-]){{6,20}}")
# No word boundaries: a number glued to letters ("card4111111111111111") is still a number.
_NUMBER = _compile(rf"\+?\(?\d(?:{_SEPARATOR}{{0,3}}\d)+")
_SUSPECT = _compile(r"@|\d")  # a message with neither cannot hold anything redacted here
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DATE = _compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}")


def redact(text: str) -> str:
    """Return the NFKC form of the text with personal data replaced by marks."""
    # A lone surrogate (JSON can carry one) cannot be encoded for RE2 or for a database.
    text = _LONE_SURROGATE.sub("\ufffd", unicodedata.normalize("NFKC", text))
    if not _SUSPECT.search(text):  # most messages: one scan, no substitution
        return text
    text = _EMAIL.subn(EMAIL_MARK, text)[0]
    text = _substitute(_IBAN, text, _iban_mark)
    text = _substitute(_ID, text, _id_mark)
    return _substitute(_NUMBER, text, _number_mark)


def _substitute(pattern: Any, text: str, mark: Callable[[str], str | None]) -> str:
    """Replace each match of a pattern by ``mark(match)``; a mark of None keeps the match.

    A mark may replace only the start of a match: it then returns the mark followed by the rest.
    """
    pieces, kept_until = [], 0
    for match in pattern.finditer(text):
        if (replacement := mark(match.group())) is not None:
            pieces += [text[kept_until : match.start()], replacement]
            kept_until = match.end()
    return "".join([*pieces, text[kept_until:]]) if pieces else text


def _iban_mark(candidate: str) -> str | None:
    # The pattern is greedy ("DE89 3704 0044 0532 0130 00 thanks" runs into "thanks"), and IBANs
    # differ in length by country: the longest valid prefix is the IBAN.
    for end in range(len(candidate), 14, -1):
        if candidate[end - 1].isalnum() and iban.is_valid(candidate[:end]):
            return IBAN_MARK + candidate[end:]
    return None


def _id_mark(token: str) -> str | None:
    if len(token.replace("-", "")) not in ID_LENGTHS:
        return None
    has_letter = any(character.isalpha() for character in token)
    has_digit = any(character.isdigit() for character in token)
    if has_letter and has_digit and any(is_valid(token) for is_valid in NATIONAL_IDS):
        return ID_MARK
    return None


def _number_mark(number: str) -> str | None:
    if _DATE.fullmatch(number):
        return None
    digits = "".join(character for character in number if character.isdigit())
    if (
        MIN_CARD_DIGITS <= len(digits) <= MAX_CARD_DIGITS
        and luhn.is_valid(digits)
        and not number.startswith("+")
    ):
        return CARD_MARK
    if len(digits) >= MIN_PHONE_DIGITS:
        return PHONE_MARK
    return None
