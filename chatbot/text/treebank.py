"""Split English text into words by the Penn Treebank conventions, the English bots' tokenizer.

The conventions (Robert MacIntyre's tokenizer for the Penn Treebank; see NOTICE): punctuation,
brackets and quotes are tokens of their own, opening double quotes become ``, closing ones '',
clitics start their own token ("they're" -> "they", "'re"; "don't" -> "do", "n't") and a few
run-together words are cut in two ("cannot" -> "can", "not"). Commas and colons inside numbers stay
("1,000", "3:45"), and curly quotes, guillemets and dashes are tokens too, as NLTK's word tokenizer
has them. The code is the project's own, so that an English bot's server never imports NLTK; the
tests hold it to NLTK's NLTKWordTokenizer token for token.

How it works: each stage below surrounds what should stand alone with spaces; the text is then
split on whitespace. Every pattern matches in time linear in the text's length.
"""

from __future__ import annotations

import re

import regex

Stage = tuple[tuple[re.Pattern[str] | regex.Pattern[str], str], ...]

# Unicode's White_Space characters. Python's str.isspace also counts U+001C-U+001F, which these
# rules treat as part of a word (the final split still breaks words there).
WHITE_SPACE = "[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _stage(*rules: tuple[str, str]) -> Stage:
    return tuple((re.compile(pattern), replacement) for pattern, replacement in rules)


# Opening quotes: a double quote that starts the text or follows a space or an opening bracket
# becomes ``. Opening curly quotes, guillemets and backticks stand alone.
OPENING_QUOTES = _stage(
    (r'^"', "``"),
    (r"(``)", r" \1 "),
    (r"([\u00ab\u201c\u2018\u201e]|`+)", r" \1 "),
    (r'([ (\[{<])("|\'\')', r"\1 `` "),
)

# Punctuation that stands alone, with the exceptions that keep numbers, URLs and abbreviations whole.
PUNCTUATION = _stage(
    # The full stop that ends the text, perhaps before closing brackets and quotes ("Mr." elsewhere
    # keeps its full stop).
    (rf"([^.])(\.)([\]\)}}>\"'\u00bb\u201d\u2019 ]*){WHITE_SPACE}*$", r"\1 \2\3 "),
    (r"[\u2012-\u2015]", r" \g<0> "),  # figure, en and em dashes, the horizontal bar
    (r"([:,])([^\d])", r" \1 \2"),  # not "1,000" nor "3:45"
    (r"([:,])$", r" \1 "),
    (r"\.{2,}", r" \g<0> "),  # an ellipsis
    (r"[;@#$%&?!]", r" \g<0> "),
    (r"([^'])' ", r"\1 ' "),  # a closing single quote
    # From here on every white space is a plain space, so that the rules below see a word's end.
    # (Not earlier: a closing single quote is set apart above only before a plain space.)
    (WHITE_SPACE, " "),
    # Brackets and asterisks only now: a quote before them is not a closing one ("'M'*").
    (r"[\]\[(){}<>*]", r" \g<0> "),
    (r"--", r" -- "),
)

# Closing quotes and clitics, on text padded with spaces so that every word has an end.
CLOSING_QUOTES_AND_CLITICS = (
    *_stage(
        (r"[\u00bb\u201d\u2019]", r" \g<0> "),
        (r"''", " '' "),
        (r'"', " '' "),
    ),
    # A single quote that opens a word other than a clitic ("'hello", also "'tis" and "'twas"),
    # apart from the word. A word character here is Unicode's (combining marks included), which
    # needs the regex module.
    (regex.compile(r"(?i)(?<!\w)'(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), "' "),
    *_stage(
        (r"([^' ])('[sSmMdD]|') ", r"\1 \2 "),
        (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    ),
)

# Words written together that the Penn Treebank cuts in two. "wanna" only before a space.
RUN_TOGETHER_WORDS = _stage(
    *(
        (rf"(?i)\b({first})({second})\b", r" \1 \2 ")
        for first, second in (
            ("can", "not"),
            ("d", "'ye"),
            ("gim", "me"),
            ("gon", "na"),
            ("got", "ta"),
            ("lem", "me"),
            ("more", "'n"),
        )
    ),
    (r"(?i)\b(wan)(na)\s", r" \1 \2 "),
    # "'tis" and "'twas" that a split above has just set apart ("cannot'tis"); elsewhere the
    # single-quote rule has already split them as "'", "tis". Two passes, so that the spaces
    # the first adds ("lemme'tis'twas") let the second see its word.
    (r"(?i) ('t)(is)\b", r" \1 \2 "),
    (r"(?i) ('t)(was)\b", r" \1 \2 "),
)


def tokenize(text: str) -> list[str]:
    """Split text into Penn Treebank word tokens, as NLTK's ``NLTKWordTokenizer().tokenize`` does."""
    for pattern, replacement in OPENING_QUOTES + PUNCTUATION:
        text = pattern.sub(replacement, text)
    text = f" {text} "
    for pattern, replacement in CLOSING_QUOTES_AND_CLITICS + RUN_TOGETHER_WORDS:
        text = pattern.sub(replacement, text)
    return text.split()
