"""NLTK's word tokenizer (``NLTKWordTokenizer``), ported: the same patterns, the same engine.

Why a port: ``import nltk`` imports the whole toolkit (scikit-learn and scipy with it), which cost
every server about 100 MB and seconds of start-up for two small pieces of it; and NLTK 3.10 runs
each of the ~40 substitutions through its ReDoS guard (a timer per call), which doubled their cost
per message. The patterns are NLTK's, unchanged, compiled as NLTK compiles them (with ``regex``, whose
Unicode tables are newer than ``re``'s; the contractions with ``re``) and applied in NLTK's order.
tests/test_text.py holds the port to NLTK token for token, and its adversarial inputs to a time
linear in their length.

Original: nltk/tokenize/destructive.py, Copyright (C) 2001-2026 NLTK Project, Apache License 2.0.
"""

from __future__ import annotations

import re

import regex

Rules = tuple[tuple[regex.Pattern[str] | re.Pattern[str], str], ...]

STARTING_QUOTES: Rules = (
    (regex.compile("([\u00ab\u201c\u2018\u201e]|[`]+)"), r" \1 "),
    (regex.compile(r"^\""), r"``"),
    (regex.compile(r"(``)"), r" \1 "),
    (regex.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (regex.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
)
PUNCTUATION: Rules = (
    (regex.compile(r'([^\.])(\.)([\]\)}>"\'' "\u00bb\u201d\u2019 " r"]*+)\s*$"), r"\1 \2 \3 "),
    (regex.compile(r"([:,])([^\d])"), r" \1 \2"),
    (regex.compile(r"([:,])$"), r" \1 "),
    (regex.compile(r"\.{2,}"), r" \g<0> "),
    (regex.compile(r"[;@#$%&]"), r" \g<0> "),
    (regex.compile(r"[\u2012-\u2015]"), r" \g<0> "),  # figure dash, en and em dashes, horizontal bar
    (regex.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),  # the final period
    (regex.compile(r"[?!]"), r" \g<0> "),
    (regex.compile(r"([^'])' "), r"\1 ' "),
    (regex.compile(r"[*]"), r" \g<0> "),
)
PARENS_BRACKETS: Rules = ((regex.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> "),)
DOUBLE_DASHES: Rules = ((regex.compile(r"--"), r" -- "),)
ENDING_QUOTES: Rules = (
    (regex.compile("([\u00bb\u201d\u2019])"), r" \1 "),
    (regex.compile(r"''"), " '' "),
    (regex.compile(r'"'), " '' "),
    (regex.compile(r"\s+"), " "),
    (regex.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (regex.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
)
# Robert MacIntyre's contractions, split in two ("cannot" -> "can", "not").
CONTRACTIONS: Rules = tuple(
    (re.compile(pattern), r" \1 \2 ")
    for pattern in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )
)


def _substitute(rules: Rules, text: str) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def tokenize(text: str) -> list[str]:
    """Split text into tokens exactly as ``NLTKWordTokenizer().tokenize(text)`` does."""
    text = _substitute(STARTING_QUOTES, text)
    text = _substitute(PUNCTUATION, text)
    text = _substitute(PARENS_BRACKETS, text)
    text = _substitute(DOUBLE_DASHES, text)
    text = _substitute(ENDING_QUOTES, f" {text} ")
    return _substitute(CONTRACTIONS, text).split()
